"""Ground truth of a simulated bundle, and the checks of an attribution run against it.

`deepreg/bundled/simulated/truth/` (written by `deepreg.data.simulate`) holds the planted regulators
(roles master / minor / decoy, their JASPAR motif and consensus), their targets, the motifs as a MEME
file and the condition programs. The checks (issue 6): planted master regulators at the top of the
regulator table (precision at k), planted motifs matched by first-layer filters at q < 0.05, the
known-target test at p < 0.01 for the planted regulators, and a TF knock-out that moves the TF's
targets more than other genes.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from deepreg.attribution.motifs import base_id
from deepreg.attribution.stats import precision_at_k


@dataclasses.dataclass
class Truth:
    folder: Path
    regulators: pd.DataFrame   # orf, symbol, jaspar_id, motif_consensus, role, ...
    targets_file: Path
    conditions: pd.DataFrame | None

    @property
    def masters(self) -> list[str]:
        return self.regulators.loc[self.regulators["role"] == "master", "orf"].tolist()

    @property
    def planted(self) -> pd.DataFrame:
        return self.regulators[self.regulators["role"].isin(["master", "minor"])]

    def condition_groups(self, conditions) -> dict[str, np.ndarray] | None:
        if self.conditions is None or "program" not in self.conditions:
            return None
        program = dict(zip(self.conditions["name"].astype(str), self.conditions["program"].astype(str)))
        groups: dict[str, list[int]] = {}
        for index, name in enumerate(conditions):
            groups.setdefault(program.get(str(name).strip(), "other"), []).append(index)
        return {name: np.array(values) for name, values in groups.items()}


def load_truth(folder: str | Path | None, bundle: str | None = None) -> Truth | None:
    """The truth folder given, or the bundled one of `bundle` when it has one (None otherwise)."""
    if folder in (None, "", "none"):
        return None
    if folder == "auto":
        if not bundle:
            return None
        path = Path(str(resources.files("deepreg") / "bundled" / bundle / "truth"))
    else:
        path = Path(folder)
    if not (path / "regulators.tsv").is_file():
        return None
    regulators = pd.read_csv(path / "regulators.tsv", sep="\t", dtype=str, keep_default_na=False)
    conditions = pd.read_csv(path / "conditions.tsv", sep="\t") if (path / "conditions.tsv").is_file() else None
    return Truth(folder=path, regulators=regulators, targets_file=path / "targets.tsv", conditions=conditions)


def regulator_checks(truth: Truth, table: pd.DataFrame, ks=(3, 5, 10)) -> dict:
    """Precision at k of the planted masters (and of all planted regulators) in the ranked table."""
    ranked = table["regulator"].tolist()
    masters = set(truth.masters)
    planted = set(truth.planted["orf"])
    out = {"masters": sorted(truth.regulators.loc[truth.regulators["role"] == "master", "symbol"]),
           "master_ranks": {row["symbol"]: int(ranked.index(row["orf"]) + 1)
                            for _, row in truth.regulators[truth.regulators["role"] == "master"].iterrows()
                            if row["orf"] in ranked}}
    for k in ks:
        out[f"precision_at_{k}_masters"] = precision_at_k(ranked, masters, k)
    out[f"precision_at_{len(planted)}_planted"] = precision_at_k(ranked, planted, len(planted))
    out["recall_masters_in_top_5"] = len(set(ranked[:5]) & masters) / max(len(masters), 1)
    return out


def motif_checks(truth: Truth, comparisons: pd.DataFrame, threshold: float = 0.05) -> pd.DataFrame:
    """For each planted motif: the best query (filter or pattern) matching it and whether q < threshold."""
    rows = []
    significant = comparisons.assign(base=comparisons["target_id"].map(base_id)) if len(comparisons) else comparisons
    for _, regulator in truth.planted.iterrows():
        if not regulator.get("jaspar_id"):
            continue
        hits = significant[significant["base"] == base_id(regulator["jaspar_id"])] if len(significant) else significant
        best = hits.sort_values("q_value").head(1)
        rows.append({"regulator": regulator["symbol"], "role": regulator["role"], "jaspar_id": regulator["jaspar_id"],
                     "consensus": regulator.get("motif_consensus", ""),
                     "best_query": best["query"].iloc[0] if len(best) else "",
                     "best_q_value": float(best["q_value"].iloc[0]) if len(best) else float("nan"),
                     "queries_matched": int((hits["q_value"] < threshold).sum()) if len(hits) else 0,
                     "matched": bool(len(best) and best["q_value"].iloc[0] < threshold)})
    return pd.DataFrame(rows)
