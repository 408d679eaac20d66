"""Run every no-network baseline on the real Gasch 2000 compendium in three cross-validation settings.

A check, not a test: it prints one table per setting (random pairs 80/10/10, held-out conditions,
held-out genes) to compare against the numbers the network has to beat. Pairs with a missing value
are left out of every split. Without ``--promoters`` the cis baseline runs on random promoters, so its
number is then only a null reference. On a busy machine set OPENBLAS_NUM_THREADS=1: the small matrix
products here lose more to contended BLAS threads than they gain (timings vary several-fold).

    python benchmarks/baselines_check.py --expression PCL --regulators LIST [--targets LIST] \\
        [--promoters NPY] [--seed 0] [--exclude-regulators]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from deepreg.models.baselines import TEST, TRAIN, UNUSED, VALIDATION, run_all_baselines

SETTINGS = ("random_pairs", "held_out_conditions", "held_out_genes")


def read_expression(path: str) -> pd.DataFrame:
    """Genes x conditions log2 ratios from a PCL file (UID, NAME, GWEIGHT, one column per condition)."""
    table = pd.read_csv(path, sep="\t", index_col=0)
    return table.drop(columns=["NAME", "GWEIGHT"]).astype(np.float32)


def read_orf_list(path: str) -> list[str]:
    with open(path) as handle:
        return [line.split()[0] for line in handle if line.strip()]


def random_pair_split(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    return rng.choice(np.array([TRAIN, VALIDATION, TEST], dtype=np.int8), size=shape, p=(0.8, 0.1, 0.1))


def held_out_axis_split(shape: tuple[int, int], rng: np.random.Generator, axis: int, fraction: float) -> np.ndarray:
    """Whole rows (axis 0) or columns (axis 1): ``fraction`` of them test, as many validation."""
    n_items = shape[axis]
    n_held_out = round(fraction * n_items)
    labels = np.full(n_items, TRAIN, dtype=np.int8)
    order = rng.permutation(n_items)
    labels[order[:n_held_out]] = TEST
    labels[order[n_held_out : 2 * n_held_out]] = VALIDATION
    return np.broadcast_to(labels[:, None] if axis == 0 else labels[None, :], shape).copy()


def make_split(setting: str, expression: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if setting == "random_pairs":
        split = random_pair_split(expression.shape, rng)
    elif setting == "held_out_conditions":
        split = held_out_axis_split(expression.shape, rng, axis=1, fraction=0.1)
    else:
        split = held_out_axis_split(expression.shape, rng, axis=0, fraction=0.1)
    split[np.isnan(expression)] = UNUSED
    return split


def random_promoters(n_genes: int, length: int, seed: int) -> np.ndarray:
    """One-hot random promoters with the yeast base composition (AT-rich)."""
    rng = np.random.default_rng(seed)
    codes = rng.choice(4, size=(n_genes, length), p=(0.31, 0.19, 0.19, 0.31))
    return np.eye(4, dtype=np.uint8)[codes]


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expression", required=True, help="PCL file, e.g. gasch2000/complete_dataset.txt")
    parser.add_argument("--regulators", required=True, help="regulator ORF list, one per line")
    parser.add_argument("--targets", help="target ORF list (rows to predict); default: every row")
    parser.add_argument("--promoters", help=".npy G x L x 4 one-hot promoters in target order; default: random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--exclude-regulators", action="store_true", help="leave regulator genes out of scoring")
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    started = time.perf_counter()
    table = read_expression(arguments.expression)
    regulator_orfs = read_orf_list(arguments.regulators)
    targets = read_orf_list(arguments.targets) if arguments.targets else list(table.index)
    expression = table.loc[targets].to_numpy()
    regulators = np.nan_to_num(table.loc[regulator_orfs].to_numpy().T)
    if arguments.promoters:
        sequences, promoter_source = np.load(arguments.promoters), arguments.promoters
    else:
        sequences, promoter_source = random_promoters(len(targets), 1000, arguments.seed), "random promoters"
    targets_mask = ~np.isin(targets, regulator_orfs) if arguments.exclude_regulators else None
    print(
        f"{expression.shape[0]} genes x {expression.shape[1]} conditions, {regulators.shape[1]} regulators, "
        f"{int(np.isnan(expression).sum())} missing; cis input: {promoter_source}; "
        f"scored genes: {'targets minus regulators' if targets_mask is not None else 'all targets'}; "
        f"loaded in {time.perf_counter() - started:.1f} s"
    )
    pd.set_option("display.width", 200)
    for setting in arguments.settings:
        split = make_split(setting, expression, arguments.seed)
        labels = (("train", TRAIN), ("val", VALIDATION), ("test", TEST))
        counts = {name: int((split == value).sum()) for name, value in labels}
        print(f"\n== {setting} (seed {arguments.seed}; pairs {counts})")
        results = run_all_baselines(expression, split, regulators, sequences, targets_mask=targets_mask)
        print(results.to_string(index=False, float_format=lambda value: f"{value:.4f}"))


if __name__ == "__main__":
    main()
