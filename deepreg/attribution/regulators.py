"""Regulator importance: DeepLIFT (and gradient x input) scores summed as absolute values per regulator.

The notebook's section 4.1: for every (gene, condition) pair, the score of every regulator input;
summed as |score| over all pairs, the ranking is right-skewed, a few master regulators on top. Then
the known-target check (section 4.2): do a regulator's known targets get higher scores than the
other genes? (one-sided Mann-Whitney U on the per-gene sums of |score| over conditions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepreg.attribution.deeplift import RegulatorSums
from deepreg.attribution.stats import benjamini_hochberg, mann_whitney_greater
from deepreg.data.io import read_text
from deepreg.errors import DeepRegError


def importance_table(regulators, symbols, deeplift: RegulatorSums, gradient: RegulatorSums | None = None) -> pd.DataFrame:
    """One row per regulator, ranked by the DeepLIFT sum of |score| over all pairs."""
    total = deeplift.total_abs
    table = pd.DataFrame({
        "regulator": list(regulators),
        "symbol": [s or r for s, r in zip(symbols, regulators)],
        "deeplift_abs_sum": total,
        "deeplift_share": total / total.sum() if total.sum() > 0 else total,
        "deeplift_mean_abs": total / max(deeplift.pairs, 1),
        "deeplift_signed_mean": deeplift.per_gene_signed.sum(axis=0) / max(deeplift.pairs, 1),
    })
    if gradient is not None:
        table["gradient_x_input_abs_sum"] = gradient.total_abs
        table["gradient_x_input_rank"] = (-gradient.total_abs).argsort().argsort() + 1
    table = table.sort_values("deeplift_abs_sum", ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def skewness(values) -> float:
    from scipy.stats import skew
    return float(skew(np.asarray(values, float)))


def plot_distribution(table: pd.DataFrame, path: Path, top: int = 25, title: str = "Regulator importance") -> Path:
    """Ranked |score| sums (bar chart of the top regulators) and their distribution."""
    from deepreg._plotting import pyplot

    plt = pyplot()
    fig, (bars, hist) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2.2, 1]})
    shown = table.head(top)
    colours = shown["color"] if "color" in shown else "#4477aa"
    bars.bar(range(len(shown)), shown["deeplift_share"], color=colours)
    bars.set_xticks(range(len(shown)), shown["symbol"], rotation=70, fontsize=8)
    bars.set_ylabel("share of sum |DeepLIFT score|")
    bars.set_title(f"{title}: top {len(shown)} of {len(table)}")
    hist.hist(table["deeplift_share"], bins=40, color="#888888")
    hist.set_xlabel("share of sum |score|")
    hist.set_ylabel("regulators")
    hist.set_title(f"distribution (skewness {skewness(table['deeplift_share']):.2f})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_methods(table: pd.DataFrame, path: Path) -> Path | None:
    """DeepLIFT vs gradient x input sums per regulator (log-log)."""
    if "gradient_x_input_abs_sum" not in table:
        return None
    from scipy.stats import spearmanr

    from deepreg._plotting import pyplot

    plt = pyplot()
    fig, axis = plt.subplots(figsize=(4.8, 4.4))
    x, y = table["deeplift_abs_sum"], table["gradient_x_input_abs_sum"]
    axis.scatter(x, y, s=10, color="#4477aa")
    for _, row in table.head(8).iterrows():
        axis.annotate(row["symbol"], (row["deeplift_abs_sum"], row["gradient_x_input_abs_sum"]), fontsize=7)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("DeepLIFT sum |score|")
    axis.set_ylabel("gradient x input sum |score|")
    axis.set_title(f"Spearman {spearmanr(x, y).statistic:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------------
# Known targets
# --------------------------------------------------------------------------------------------------
def read_targets(path: str | Path, *, regulator: str | None = None) -> dict[str, set[str]]:
    """Known targets from a file: {regulator name: {gene names}}.

    Either a table with a header naming a regulator column (`regulator`, `regulator_symbol`, `tf`)
    and a gene column (`gene`, `target`, `orf`), tab- or comma-separated (every regulator in it;
    both names of a regulator are keys when the file has both columns); or a plain list of genes, one
    per line, for the one regulator named by `regulator`.
    """
    path = Path(path)
    if not path.is_file():
        raise DeepRegError(f"targets file {path}: no such file")
    lines = [line for line in read_text(path).splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise DeepRegError(f"targets file {path}: empty")
    separator = "\t" if "\t" in lines[0] else ","
    header = [h.strip().lower() for h in lines[0].split(separator)]
    regulator_columns = [i for i, h in enumerate(header) if h in ("regulator", "regulator_symbol", "tf", "tf_symbol")]
    gene_columns = [i for i, h in enumerate(header) if h in ("gene", "target", "orf", "target_gene")]
    if regulator_columns and gene_columns:
        targets: dict[str, set[str]] = {}
        for number, line in enumerate(lines[1:], start=2):
            cells = line.split(separator)
            if len(cells) <= max(regulator_columns + gene_columns):
                raise DeepRegError(f"targets file {path}, line {number}: expected {len(header)} columns")
            gene = cells[gene_columns[0]].strip()
            for column in regulator_columns:
                name = cells[column].strip()
                if name:
                    targets.setdefault(name, set()).add(gene)
        return targets
    if regulator is None:
        raise DeepRegError(f"targets file {path}: a plain gene list needs the regulator it belongs to "
                           "(--targets-of NAME), or give a table with 'regulator' and 'gene' columns")
    return {regulator: {line.split(separator)[0].strip() for line in lines}}


def name_index(ids, symbols) -> dict[str, int]:
    """Map ORF ids and symbols (case-insensitive) to positions."""
    index: dict[str, int] = {}
    for position, (orf, symbol) in enumerate(zip(ids, symbols)):
        index.setdefault(orf.upper(), position)
        if symbol:
            index.setdefault(symbol.upper(), position)
    return index


def resolve_targets(targets: dict[str, set[str]], regulators, regulator_symbols, genes, gene_symbols) -> dict[int, np.ndarray]:
    """{regulator index: gene indices} for the regulators and genes of a dataset (unknown names dropped)."""
    regulator_at = name_index(regulators, regulator_symbols)
    gene_at = name_index(genes, gene_symbols)
    resolved: dict[int, set[int]] = {}
    for name, members in targets.items():
        position = regulator_at.get(name.upper())
        if position is None:
            continue
        found = {gene_at[g.upper()] for g in members if g.upper() in gene_at}
        resolved.setdefault(position, set()).update(found)
    return {key: np.array(sorted(value), dtype=int) for key, value in resolved.items() if value}


def target_tests(per_gene_abs: np.ndarray, targets: dict[int, np.ndarray], regulators, regulator_symbols,
                 method: str = "deeplift") -> pd.DataFrame:
    """For each regulator with targets: do its targets get higher per-gene |score| sums than other genes?"""
    rows = []
    n_genes = per_gene_abs.shape[0]
    for position, members in sorted(targets.items()):
        inside = np.zeros(n_genes, bool)
        inside[members] = True
        result = mann_whitney_greater(per_gene_abs[inside, position], per_gene_abs[~inside, position])
        rows.append({"regulator": regulators[position], "symbol": regulator_symbols[position] or regulators[position],
                     "method": method, "targets": int(inside.sum()), "mean_score_targets": result["mean_in"],
                     "mean_score_others": result["mean_out"], "effect_size": result["effect_size"],
                     "u": result["u"], "p_value": result["p_value"]})
    table = pd.DataFrame(rows, columns=["regulator", "symbol", "method", "targets", "mean_score_targets",
                                        "mean_score_others", "effect_size", "u", "p_value"])
    if len(table):
        table["q_value"] = benjamini_hochberg(table["p_value"].to_numpy())
        table = table.sort_values("p_value", kind="stable").reset_index(drop=True)
    return table


# --------------------------------------------------------------------------------------------------
# Published regulator rankings (yeast)
# --------------------------------------------------------------------------------------------------
NOTEBOOK_TOP10 = ("GAC1", "RAS1", "USV1", "MSN2", "PDR3", "YVH1", "PRR2", "SLT2", "BAS1", "SIP2")
KUNDAJE_2006_TOP_PARENTS = ("SIP2", "SLT2", "USV1", "GAC1", "MSN2", "MTH1", "PPT1", "YVH1", "HAP4")
PUBLISHED_RANKINGS = {"notebook top 10": NOTEBOOK_TOP10, "Kundaje 2006 top parents": KUNDAJE_2006_TOP_PARENTS,
                      "either": tuple(dict.fromkeys(NOTEBOOK_TOP10 + KUNDAJE_2006_TOP_PARENTS))}


def published_overlap(table: pd.DataFrame, k: int = 10, rankings: dict[str, tuple[str, ...]] = PUBLISHED_RANKINGS,
                      columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Overlap of the top k regulators with each published list, and its hypergeometric p-value.

    The universe is the regulators of the table; a published name that is not among them is left out
    of the list (so it cannot be drawn). p = P(overlap >= observed) when k regulators are drawn at random.
    `columns`: {method: score column} ranked in decreasing order (default DeepLIFT and, when present,
    gradient x input).
    """
    from scipy.stats import hypergeom

    columns = columns or {"deeplift": "deeplift_abs_sum", "gradient_x_input": "gradient_x_input_abs_sum"}
    symbols = table["symbol"].astype(str).str.upper()
    universe = set(symbols)
    rows = []
    for method, column in columns.items():
        if column not in table:
            continue
        top = symbols[table[column].sort_values(ascending=False, kind="stable").index[:k]].tolist()
        for name, listed in rankings.items():
            present = [symbol for symbol in listed if symbol.upper() in universe]
            shared = [symbol for symbol in top if symbol in {p.upper() for p in present}]
            p_value = float(hypergeom.sf(len(shared) - 1, len(universe), len(present), min(k, len(universe))))
            rows.append({"method": method, "published": name, "listed": len(listed), "among_regulators": len(present),
                         "top_k": k, "overlap": len(shared), "shared": ", ".join(shared),
                         "expected_overlap": k * len(present) / len(universe) if universe else float("nan"),
                         "p_value": p_value})
    return pd.DataFrame(rows)
