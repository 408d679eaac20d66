"""How well can any model predict single arrays of the bundled yeast compendium? A replicate bound.

The Gasch et al. 2000 compendium holds arrays of the same biology measured twice (repeat
hybridisations, redo/repeat strains, several time-zero arrays). Half the variance of the difference
of two such arrays bounds the measurement noise of one array from above (biological differences
between the two count as noise too), and with the pooled variance of all cells it bounds the
Pearson r that a predictor of single arrays can reach: sqrt(1 - noise / variance).

    python benchmarks/noise_ceiling.py
"""

from __future__ import annotations

import numpy as np

from deepreg.data.config import DataConfig
from deepreg.data.dataset import load_dataset
from deepreg.training.metrics import pearson_r

# Replicate pairs, by the condition names of the bundle (docs/reproduction.md).
REPLICATES = {
    "heat shock 0 min, two arrays of hs-2": ("Heat Shock 000 minutes hs-2", 1, 2),
    "steady state 36 C, repeat hybridisation": (("steady state 36 dec C ct-2",
                                                 "steady state 36 dec C ct-2 (repeat hyb)"), 0, 1),
    "yap1 deletion + heat, redo and repeat": (("DBYyap1- 37degree heat - 20 min (redo)",
                                               "DBYyap1 + 37degree heat (repeat)"), 0, 1),
    "msn2/4 deletion + heat, two strains": (("DBYmsn2-4- 37degree heat - 20 min",
                                             "DBYmsn2/4 (real strain) + 37degrees (20 min)"), 0, 1),
    "msn2/4 deletion + H2O2, two strains": (("DBYmsn2msn4 (good strain) + 0.32 mM H2O2",
                                             "DBYmsn2/4 (real strain) + 0.32 mM H2O2 (20 min)"), 0, 1),
}


def replicate_columns(conditions: list[str], names, first: int, second: int) -> tuple[int, int]:
    """Column indices of a replicate pair: two names, or the `first`/`second` columns sharing one name."""
    def plain(name: str) -> str:
        return " ".join(name.split())

    stripped = [plain(condition) for condition in conditions]
    if isinstance(names, tuple):
        return stripped.index(plain(names[0])), stripped.index(plain(names[1]))
    matches = [index for index, condition in enumerate(stripped) if condition == plain(names)]
    return matches[first], matches[second]


def noise_ceiling(expression: np.ndarray, a: int, b: int) -> dict:
    both = ~np.isnan(expression[:, a]) & ~np.isnan(expression[:, b])
    x, y = expression[both, a], expression[both, b]
    noise = float(np.var(x - y) / 2)
    variance = float(np.nanvar(expression))
    return {"r": pearson_r(x, y, undefined=float("nan")), "noise": noise, "ceiling_r": float(np.sqrt(1 - noise / variance)),
            "genes": int(both.sum())}


def main() -> None:
    dataset = load_dataset(DataConfig(bundle="yeast"))
    expression = dataset.expression
    print(f"pooled variance of all {np.isfinite(expression).sum():,} cells: {np.nanvar(expression):.3f}")
    print(f"{'replicate pair':<44} {'columns':>9} {'r':>6} {'noise':>6} {'ceiling r':>9}")
    for label, (names, first, second) in REPLICATES.items():
        a, b = replicate_columns(list(dataset.conditions), names, first, second)
        figures = noise_ceiling(expression, a, b)
        print(f"{label:<44} {f'{a},{b}':>9} {figures['r']:>6.3f} {figures['noise']:>6.3f} {figures['ceiling_r']:>9.3f}")


if __name__ == "__main__":
    main()
