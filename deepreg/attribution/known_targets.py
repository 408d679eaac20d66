"""Known TF -> target references, and the decoy-controlled test of regulator attributions against them.

A reference is a long table (`TF`, `TARGET_ORF`, optionally `TF_ORF`; tab- or comma-separated, gzip
allowed; TFs by ORF id or gene symbol) or a folder with one gene list per TF (file name = TF). The
yeast bundle ships three, restricted to its regulators and genes (`--known-targets bundled`):
Balaji et al. 2006, MacIsaac et al. 2006 and Hu et al. 2007.

Why a decoy control: a regulator's per-gene attribution (sum of |DeepLIFT| over conditions) is
larger on genes that vary a lot, whoever regulates them. Known targets tend to vary a lot, so a
Mann-Whitney test of targets against other genes passes for nearly every regulator (on simulated
data 50-97 % of the decoys reach p < 0.01). Here each TF's AUROC (targets vs other genes) is
compared with the AUROC of every other regulator on the same target set: the TF's rank among all
regulators and an empirical p-value from that decoy distribution, Benjamini-Hochberg across TFs.

The same test on each gene's attribution shares (`per_gene_share`: a regulator's |score| sum over the
gene's total over regulators) removes the gene-variability factor that every regulator shares: a
TF is then specific when it takes a larger part of its targets' explanation than of other genes'.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _stats

from deepreg.attribution.regulators import resolve_targets
from deepreg.attribution.stats import benjamini_hochberg, mann_whitney_greater
from deepreg.data.io import LEGACY_ENCODING, read_text
from deepreg.errors import DeepRegError

TF_COLUMNS = ("tf", "tf_symbol", "regulator")
TF_ORF_COLUMNS = ("tf_orf", "regulator_orf")
TARGET_COLUMNS = ("target_orf", "target", "gene")
LIST_SUFFIXES = (".txt", ".tsv", ".csv", ".list", ".lst")
BUNDLED = "bundled"


@dataclasses.dataclass
class Reference:
    """One reference table: {TF name: target names} as read, and where it came from."""

    name: str
    label: str
    source: str
    targets: dict[str, set[str]]


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def _lines(path: Path) -> list[str]:
    """Reference tables come from many sources: text that is not UTF-8 is read as latin-1, not refused."""
    return read_text(path, fallback=LEGACY_ENCODING).splitlines()


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    return next((i for i, h in enumerate(header) if h in names), None)


def read_target_table(path: str | Path) -> dict[str, set[str]]:
    """A long table with a header naming `TF` (or `TF_ORF`) and `TARGET_ORF` columns.

    Both names of a TF are keys when the table has both `TF` and `TF_ORF`. Lines starting with '#'
    and blank lines are skipped; any other line must have as many fields as the header.
    """
    path = Path(path)
    lines = _lines(path)
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip() and not line.startswith("#")]
    if not numbered:
        raise DeepRegError(f"{path}: empty, expected a header with columns TF and TARGET_ORF")
    header_line, header_text = numbered[0]
    separator = "\t" if "\t" in header_text else ","
    header = [cell.strip().lower() for cell in header_text.split(separator)]
    tf_column, tf_orf_column = _column(header, TF_COLUMNS), _column(header, TF_ORF_COLUMNS)
    target_column = _column(header, TARGET_COLUMNS)
    if (tf_column is None and tf_orf_column is None) or target_column is None:
        raise DeepRegError(f"{path}: line {header_line}: expected a header with columns TF (or TF_ORF) and "
                           f"TARGET_ORF, separated by tabs or commas; got {header_text.strip()[:80]!r}")
    wanted = "TF, TARGET_ORF" if tf_orf_column is None else "TF, TARGET_ORF, TF_ORF"
    targets: dict[str, set[str]] = {}
    for number, line in numbered[1:]:
        cells = [cell.strip() for cell in line.split(separator)]
        if len(cells) != len(header):
            raise DeepRegError(f"{path}: line {number}: expected {len(header)} {'tab' if separator == chr(9) else 'comma'}"
                               f"-separated fields as in the header ({wanted}), got {len(cells)}")
        names = [cells[c] for c in (tf_column, tf_orf_column) if c is not None and cells[c]]
        if not names or not cells[target_column]:
            raise DeepRegError(f"{path}: line {number}: expected a TF and a TARGET_ORF, got an empty field")
        for name in names:
            targets.setdefault(name, set()).add(cells[target_column])
    if not targets:
        raise DeepRegError(f"{path}: no rows after the header (expected TF and TARGET_ORF pairs)")
    return targets


def _list_stem(path: Path) -> str:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    for suffix in LIST_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name


def read_target_folder(folder: str | Path) -> dict[str, set[str]]:
    """A folder with one file per TF (name = the TF's ORF or symbol), one target gene per line."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DeepRegError(f"{folder}: no target lists (expected one file per TF, e.g. MSN2.txt, one gene per line)")
    targets: dict[str, set[str]] = {}
    for path in files:
        genes = set()
        for number, line in enumerate(_lines(path), start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if len(text.split()) != 1 or "," in text:
                raise DeepRegError(f"{path}: line {number}: expected one gene id per line, got {text[:60]!r}")
            genes.add(text)
        if not genes:
            raise DeepRegError(f"{path}: no genes (expected one target gene id per line)")
        targets.setdefault(_list_stem(path), set()).update(genes)
    return targets


def read_known_targets(path: str | Path) -> dict[str, set[str]]:
    """A long table (file) or a folder of per-TF lists (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        return read_target_folder(path)
    if not path.is_file():
        raise DeepRegError(f"known targets {path}: no such file or folder")
    return read_target_table(path)


def bundled_references() -> list[Reference]:
    """The reference tables shipped in the yeast bundle (deepreg/bundled/yeast/)."""
    from deepreg.data import yeast

    folder = yeast.bundled_yeast_dir()
    found = []
    for table in yeast.KNOWN_TARGET_TABLES:
        path = folder / table.bundle_file
        if path.is_file():
            found.append(Reference(table.key, table.label, str(path), read_target_table(path)))
    if not found:
        raise DeepRegError(f"--known-targets bundled: the yeast bundle {folder} has no known-target tables "
                           "(rebuild it with `deepreg data build-yeast --known-targets DIR`)")
    return found


def load_references(sources) -> list[Reference]:
    """References from `--known-targets` values: 'bundled' and paths (a file or a folder each)."""
    references: list[Reference] = []
    for source in sources:
        if str(source).strip().lower() == BUNDLED:
            references.extend(bundled_references())
            continue
        path = Path(source)
        name = _list_stem(path) if path.is_file() else path.name
        references.append(Reference(name, name, str(path), read_known_targets(path)))
    return references


# --------------------------------------------------------------------------------------------------
# The decoy-controlled test
# --------------------------------------------------------------------------------------------------
def per_gene_share(per_gene: np.ndarray) -> np.ndarray:
    """Each gene's attribution spread over the regulators: per_gene[g, r] / sum_r per_gene[g, r] (0 where all are 0)."""
    per_gene = np.asarray(per_gene, float)
    totals = per_gene.sum(axis=1, keepdims=True)
    return np.divide(per_gene, totals, out=np.zeros_like(per_gene), where=totals > 0)


def column_ranks(per_gene: np.ndarray) -> np.ndarray:
    """Ranks of the genes within each regulator's column (average ranks for ties)."""
    return _stats.rankdata(np.asarray(per_gene, float), axis=0)


def auroc_all_regulators(ranks: np.ndarray, members: np.ndarray) -> np.ndarray:
    """AUROC of every regulator's per-gene score for `members` vs the other genes.

    `ranks` is the per-column rank matrix (G x R, average ranks for ties) of the scores; the AUROC
    is the Mann-Whitney U of the members divided by n_in x n_out.
    """
    n_genes = ranks.shape[0]
    n_in = len(members)
    n_out = n_genes - n_in
    rank_sum = ranks[members].sum(axis=0)
    return (rank_sum - n_in * (n_in + 1) / 2.0) / (n_in * n_out)


def decoy_target_tests(per_gene: np.ndarray, target_sets: dict[int, np.ndarray], regulators, regulator_symbols,
                       *, reference: str = "", method: str = "deeplift",
                       ranks: np.ndarray | None = None) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """Per TF with targets: AUROC, rank among all regulators, decoy p and BH q; and the decoy AUROCs.

    per_gene: G x R per-gene scores (sum of |score| over conditions). The decoys of a TF are all other
    regulators scored on the TF's target set; p = (1 + decoys with AUROC >= the TF's) / (1 + decoys).
    `mwu_p` is the one-sided Mann-Whitney p of the TF's own scores (the paper's test, no decoys).
    `ranks` (`column_ranks(per_gene)`) saves ranking the matrix again for every reference.
    """
    per_gene = np.asarray(per_gene, float)
    n_genes, n_regulators = per_gene.shape
    ranks = column_ranks(per_gene) if ranks is None else ranks
    rows, decoys = [], {}
    for position, members in sorted(target_sets.items()):
        members = np.unique(np.asarray(members, int))
        if len(members) == 0 or len(members) >= n_genes:
            continue
        aurocs = auroc_all_regulators(ranks, members)
        own = aurocs[position]
        others = np.delete(aurocs, position)
        decoys[position] = others
        inside = np.zeros(n_genes, bool)
        inside[members] = True
        paper = mann_whitney_greater(per_gene[inside, position], per_gene[~inside, position])
        rows.append({"reference": reference, "method": method, "regulator": regulators[position],
                     "symbol": regulator_symbols[position] or regulators[position], "targets": int(len(members)),
                     "auroc": float(own), "rank": int(1 + (others > own).sum()), "regulators": int(n_regulators),
                     "decoy_median_auroc": float(np.median(others)) if len(others) else float("nan"),
                     "decoy_p": float((1 + (others >= own).sum()) / (1 + len(others))),
                     "mwu_p": paper["p_value"]})
    columns = ["reference", "method", "regulator", "symbol", "targets", "auroc", "rank", "regulators",
               "decoy_median_auroc", "decoy_p", "mwu_p"]
    table = pd.DataFrame(rows, columns=columns)
    table["q_value"] = benjamini_hochberg(table["decoy_p"].to_numpy()) if len(table) else []
    return table.sort_values(["decoy_p", "auroc"], ascending=[True, False], kind="stable").reset_index(drop=True), decoys


def summarise(table: pd.DataFrame, q_threshold: float = 0.1) -> dict:
    """Number and fraction of TFs with AUROC > 0.5 and with q < q_threshold; median AUROC and rank."""
    n = int(len(table))
    above = int((table["auroc"] > 0.5).sum()) if n else 0
    significant = int((table["q_value"] < q_threshold).sum()) if n else 0
    return {"tfs_tested": n, "tfs_auroc_above_half": above, "fraction_tfs_auroc_above_half": above / n if n else float("nan"),
            f"tfs_q_below_{q_threshold:g}": significant,
            f"fraction_tfs_q_below_{q_threshold:g}": significant / n if n else float("nan"),
            "median_auroc": float(table["auroc"].median()) if n else float("nan"),
            "median_rank": float(table["rank"].median()) if n else float("nan"),
            "regulators": int(table["regulators"].iloc[0]) if n else 0}


def tf_line(table: pd.DataFrame, symbol: str) -> dict | None:
    """The row of one TF (by symbol or ORF), as a dict, or None when it has no targets in the reference."""
    rows = table[(table["symbol"].str.upper() == symbol.upper()) | (table["regulator"].str.upper() == symbol.upper())]
    if not len(rows):
        return None
    row = rows.iloc[0]
    return {"targets": int(row["targets"]), "auroc": float(row["auroc"]), "rank": int(row["rank"]),
            "regulators": int(row["regulators"]), "mwu_p": float(row["mwu_p"]), "decoy_p": float(row["decoy_p"]),
            "q_value": float(row["q_value"])}


def resolve_reference(reference: Reference, dataset, genes) -> dict[int, np.ndarray]:
    """{regulator index: gene positions} for the dataset's regulators and the scored genes."""
    return resolve_targets(reference.targets, dataset.regulators, dataset.regulator_symbols,
                           [dataset.genes[g] for g in genes], [dataset.symbols[g] for g in genes])


def plot_auroc_null(tables: dict[str, tuple[pd.DataFrame, dict[int, np.ndarray]]], path) -> Path:
    """Per reference: the TFs' AUROC on their own targets against the pooled decoy AUROCs (histograms)."""
    from deepreg._plotting import pyplot

    plt = pyplot()
    names = list(tables)
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.2 * max(len(names), 1), 3.4), squeeze=False)
    bins = np.linspace(0, 1, 41)
    for axis, name in zip(axes[0], names):
        table, decoys = tables[name]
        pooled = np.concatenate(list(decoys.values())) if decoys else np.array([])
        if len(pooled):
            axis.hist(pooled, bins=bins, density=True, color="#bbbbbb", label=f"decoys ({len(pooled):,})")
        if len(table):
            axis.hist(table["auroc"], bins=bins, density=True, alpha=0.7, color="#cc3311", label=f"TFs ({len(table)})")
        axis.axvline(0.5, color="k", lw=0.8, ls="--")
        axis.set_xlabel("AUROC, known targets vs other genes")
        axis.set_title(name, fontsize=9)
        axis.legend(fontsize=7)
    axes[0][0].set_ylabel("density")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
