"""Automatic TF knock-outs: every TF with known targets and a motif, checked against its targets.

`--knockout auto` (also the default when `--known-targets` is given and no TF is named with
`--knockout`) picks the regulators that have targets in a reference (the `--known-targets` tables,
else the `--targets` file or the truth's targets) and a known motif of the same name: the motif set
of the run (`--motifs`, JASPAR 2026 CORE fungi by default, read offline through pyjaspar), whose
names are TF symbols (`MA0341.1 MSN2`), matched to the regulator's symbol or ORF id regardless of
case. At most `auto_knockouts` TFs, those with the most known targets first.

Each TF is knocked out as the msn2/4 deletion is: its sites (a PWM scan at 85 % of the motif's best
log-odds, both strands) masked to N in every promoter and its regulator input lowered `fold` (32)
times. A knock-out is predicted only in the `knockout_conditions` conditions where the TF's input is
highest (a deletion removes what the TF does where it is expressed), on cached sequence features
(`knockouts.CachedKnockouts`): the sequence tower runs again only on the promoters with sites.

Agreement with each reference, per TF: the AUROC of |predicted change| (mean over those conditions)
for its known targets against the other genes, the one-sided Mann-Whitney p with Benjamini-Hochberg
q across the TFs, and the TF's rank among all knocked-out TFs on the same targets (1: no other
knock-out moves them more). A gene that many TFs regulate moves in every knock-out, so the rank,
like the decoy control of the known-target test, says whether the right TF was found.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd

from deepreg.attribution.known_targets import auroc_all_regulators, column_ranks
from deepreg.attribution.stats import benjamini_hochberg, mann_whitney_greater

AUTO = "auto"
TABLE_COLUMNS = ["reference", "regulator", "symbol", "motif", "targets", "genes_with_sites", "conditions", "auroc",
                 "rank", "knockouts", "mean_abs_change_targets", "mean_abs_change_others", "p_value", "q_value"]


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A TF to knock out: its regulator position, name, motif (a key of the known motifs) and target count."""

    position: int
    name: str
    motif: str
    targets: int


def requested(tf_knockouts, known_targets, limit: int) -> bool:
    """Whether automatic knock-outs run: `--knockout auto`, or `--known-targets` without named TFs."""
    names = [str(item).strip().lower() for item in tf_knockouts]
    return limit > 0 and (AUTO in names or (bool(known_targets) and not names))


def _motif_version(key: str) -> tuple[int, str]:
    identifier = key.partition(" ")[0]
    version = re.search(r"\.(\d+)$", identifier)
    return (int(version.group(1)) if version else 0, identifier)


def motif_index(known: dict[str, np.ndarray]) -> dict[str, str]:
    """{upper-case motif name: key} for keys 'ID NAME' (the newest version when a name has several)."""
    by_name: dict[str, list[str]] = {}
    for key in known:
        identifier, _, name = key.partition(" ")
        by_name.setdefault((name or identifier).strip().upper(), []).append(key)
    return {name: max(keys, key=_motif_version) for name, keys in by_name.items()}


def choose_tfs(references: dict, regulators, symbols, known: dict[str, np.ndarray], limit: int) -> list[Candidate]:
    """The regulators with targets in any reference and a motif named after them, most targets first.

    references: {name: (label, {regulator position: target gene positions})}, as the stage resolves them.
    """
    motifs = motif_index(known)
    counts: dict[int, int] = {}
    for _, target_sets in references.values():
        for position, members in target_sets.items():
            counts[position] = max(counts.get(position, 0), len(members))
    candidates = []
    for position, count in counts.items():
        names = [name for name in (symbols[position], regulators[position]) if name]
        key = next((motifs[name.upper()] for name in names if name.upper() in motifs), None)
        if key is not None and count:
            candidates.append(Candidate(position, names[0], key, count))
    candidates.sort(key=lambda candidate: (-candidate.targets, candidate.name))
    return candidates[:limit]


def knockout_conditions(inputs: np.ndarray, position: int, n: int) -> np.ndarray:
    """The n conditions where the TF's regulator input is highest, in dataset order (all when n is 0 or >= C)."""
    n_conditions = len(inputs)
    if n <= 0 or n >= n_conditions:
        return np.arange(n_conditions)
    return np.sort(np.argsort(-np.asarray(inputs)[:, position], kind="stable")[:n])


def knockout_movements(cached, inputs: np.ndarray, candidates: list[Candidate], known: dict[str, np.ndarray], *,
                       fold: float, n_conditions: int, progress=None) -> tuple[np.ndarray, list[dict]]:
    """Mean |predicted change| per gene for each candidate's knock-out (G x K), and how each was made.

    `cached`: a `knockouts.CachedKnockouts` of the scored promoters; `progress(done, total)` after each TF.
    """
    from deepreg.attribution.motifs import pwm_sites

    movements, details = [], []
    for done, candidate in enumerate(candidates, start=1):
        columns = knockout_conditions(inputs, candidate.position, n_conditions)
        mask = pwm_sites(cached.sequences, known[candidate.motif])
        result = cached.knockout(inputs[columns], candidate.position, mask, fold=fold, condition_index=columns,
                                 name=candidate.name, separate=False)
        movements.append(np.abs(result.change).mean(axis=1))
        details.append({"genes_with_sites": result.genes_with_sites, "conditions": int(len(columns))})
        if progress is not None:
            progress(done, len(candidates))
    n_genes = len(cached.sequences)
    return (np.stack(movements, axis=1) if movements else np.zeros((n_genes, 0))), details


def agreement_table(movements: np.ndarray, details: list[dict], candidates: list[Candidate], references: dict,
                    regulators) -> pd.DataFrame:
    """Per reference and knocked-out TF with targets there: AUROC, rank among the knock-outs, p and BH q."""
    ranks = column_ranks(movements) if movements.shape[1] else movements
    n_genes = movements.shape[0]
    frames = []
    for reference, (_, target_sets) in references.items():
        rows = []
        for column, candidate in enumerate(candidates):
            members = np.unique(np.asarray(target_sets.get(candidate.position, []), int))
            if len(members) == 0 or len(members) >= n_genes:
                continue
            aurocs = auroc_all_regulators(ranks, members)   # every knock-out on this TF's targets
            own, others = aurocs[column], np.delete(aurocs, column)
            inside = np.zeros(n_genes, bool)
            inside[members] = True
            test = mann_whitney_greater(movements[inside, column], movements[~inside, column])
            rows.append({"reference": reference, "regulator": regulators[candidate.position], "symbol": candidate.name,
                         "motif": candidate.motif, "targets": int(len(members)), **details[column],
                         "auroc": float(own), "rank": int(1 + (others > own).sum()), "knockouts": len(candidates),
                         "mean_abs_change_targets": test["mean_in"], "mean_abs_change_others": test["mean_out"],
                         "p_value": test["p_value"]})
        frame = pd.DataFrame(rows, columns=TABLE_COLUMNS[:-1])
        frame["q_value"] = benjamini_hochberg(frame["p_value"].to_numpy()) if len(frame) else []
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TABLE_COLUMNS)
    return table.sort_values(["reference", "p_value"], kind="stable").reset_index(drop=True)


def summarise(table: pd.DataFrame, q_threshold: float = 0.1) -> dict:
    """Per reference: TFs knocked out, how many separate their targets (AUROC > 0.5, q < threshold,
    rank 1 among the knock-outs), the median AUROC, and each TF's line."""
    out = {}
    for reference, rows in table.groupby("reference", sort=False):
        n = len(rows)
        out[reference] = {
            "tfs": n, "tfs_auroc_above_half": int((rows["auroc"] > 0.5).sum()),
            "fraction_tfs_auroc_above_half": float((rows["auroc"] > 0.5).mean()),
            f"tfs_q_below_{q_threshold:g}": int((rows["q_value"] < q_threshold).sum()),
            f"fraction_tfs_q_below_{q_threshold:g}": float((rows["q_value"] < q_threshold).mean()),
            "tfs_rank_1": int((rows["rank"] == 1).sum()), "median_auroc": float(rows["auroc"].median()),
            "per_tf": {row.symbol: {"auroc": float(row.auroc), "rank": int(row.rank), "targets": int(row.targets),
                                    "p_value": float(row.p_value), "q_value": float(row.q_value),
                                    "genes_with_sites": int(row.genes_with_sites), "motif": row.motif}
                       for row in rows.itertuples()}}
    return out


def _reference_rows(per_reference: dict, q: float) -> pd.DataFrame:
    """The per-reference summary as report rows (counts with their fractions)."""
    def count(values, key):
        return f"{values[key]} ({values['fraction_' + key]:.0%})"

    return pd.DataFrame([{"reference": name, "TFs": values["tfs"], "AUROC > 0.5": count(values, "tfs_auroc_above_half"),
                          f"q < {q:g}": count(values, f"tfs_q_below_{q:g}"), "rank 1": values["tfs_rank_1"],
                          "median AUROC": values["median_auroc"]} for name, values in per_reference.items()])


def section(cached, inputs, references: dict, dataset, config, known: dict[str, np.ndarray], report, tables, *,
            progress=None) -> dict:
    """The automatic knock-outs of a stage run: table `tables/tf_knockouts_auto.tsv`, a report part, a summary."""
    if not requested(config.tf_knockouts, config.known_targets, config.auto_knockouts):
        return {}
    report.heading("TF knock-outs against known targets (automatic)", level=3)
    if not references:
        report.text("--knockout auto: no known targets to choose TFs from (give --known-targets or --targets, or "
                    "data with a truth folder).")
        return {"tfs": 0}
    candidates = choose_tfs(references, dataset.regulators, dataset.regulator_symbols, known, config.auto_knockouts)
    if not candidates:
        report.text("No regulator with known targets has a known motif of the same name: no automatic knock-out.")
        return {"tfs": 0}
    movements, details = knockout_movements(cached, inputs, candidates, known, fold=config.fold,
                                            n_conditions=config.knockout_conditions, progress=progress)
    table = agreement_table(movements, details, candidates, references, dataset.regulators)
    table.to_csv(tables / "tf_knockouts_auto.tsv", sep="\t", index=False)
    q = config.known_target_q
    per_reference = summarise(table, q)
    report.text(f"Every regulator with known targets and a motif of the same name among the known motifs "
                f"({len(candidates)} TFs, at most {config.auto_knockouts}, most targets first), knocked out: its "
                f"sites (PWM scan at 85% of the best log-odds, both strands) masked to N and its input lowered "
                f"{config.fold:g}-fold, predicted in the {details[0]['conditions']} conditions where its input is "
                "highest. Per reference: the AUROC of each TF's mean |predicted change| for its known targets "
                "against the other genes, one-sided Mann-Whitney p, Benjamini-Hochberg q across TFs, and the TF's "
                "rank among all knock-outs on the same targets (1: no other knock-out moves them more).")
    report.table(_reference_rows(per_reference, q), caption="per reference")
    report.table(table, max_rows=40, caption="per TF, best first within each reference")
    return {"tfs": len(candidates), "conditions_per_tf": details[0]["conditions"], "references": per_reference}
