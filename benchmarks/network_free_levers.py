"""Two network-free levers on the splits the networks do not win (docs/reproduction.md).

- `--stack` (random pairs): a linear stack of the cross-fitted low-rank completion and trans ridge
  tables of `deepreg.training.offsets` (weights fitted on the training pairs' out-of-fold values).
  If the two baselines carried different information the stack would beat both.
- `--kernel` (held-out conditions): kernel ridge over conditions, an RBF kernel on the standardised
  regulator profiles (the nonlinear version of the per-gene trans ridge), every gene at once;
  bandwidth and ridge chosen on the validation conditions.

    python benchmarks/network_free_levers.py --stack --kernel
"""

from __future__ import annotations

import argparse

import numpy as np

from deepreg.data.dataset import load_dataset
from deepreg.data.splits import TEST, TRAIN, VALIDATION
from deepreg.training.config import RunConfig
from deepreg.training.metrics import pearson_r
from deepreg.training.offsets import cached_offset


def pearson(predictions: np.ndarray, expression: np.ndarray, mask: np.ndarray) -> float:
    keep = mask & ~np.isnan(expression)
    return pearson_r(predictions[keep], expression[keep], undefined=float("nan"))


def stack_random() -> None:
    config = RunConfig.from_files("configs/experiments/bilinear-random.yaml")
    dataset = load_dataset(config.data)
    split, expression = dataset.split(config.data), dataset.expression
    names = ("low_rank_completion", "trans_ridge")
    tables = [cached_offset(name, dataset, expression, split, "random", config.data.cache_dir)[0] for name in names]
    for name, table in zip(names, tables):
        print(f"random pairs, {name}: validation r {pearson(table, expression, split == VALIDATION):.4f}, "
              f"test r {pearson(table, expression, split == TEST):.4f}")
    features = np.stack(tables, -1)
    train = (split == TRAIN) & ~np.isnan(expression)
    design = np.c_[features[train], np.ones(train.sum())]
    weights = np.linalg.lstsq(design, expression[train], rcond=None)[0]
    stacked = features @ weights[:-1] + weights[-1]
    print(f"random pairs, stack {dict(zip(names, np.round(weights[:-1], 3)))}: validation r "
          f"{pearson(stacked, expression, split == VALIDATION):.4f}, "
          f"test r {pearson(stacked, expression, split == TEST):.4f}")


def kernel_conditions() -> None:
    config = RunConfig.from_files("configs/experiments/bilinear-conditions.yaml")
    dataset = load_dataset(config.data)
    split, expression = dataset.split(config.data), dataset.expression
    regulators = dataset.regulator_inputs()
    train, validation = (split == TRAIN).any(0), (split == VALIDATION).any(0)
    means = np.nanmean(expression[:, train], 1, keepdims=True)
    centred = np.nan_to_num(expression[:, train] - means)
    standard = (regulators - regulators[train].mean(0)) / (regulators[train].std(0) + 1e-6)
    distances = ((standard[:, None, :] - standard[None, :, :]) ** 2).sum(-1)
    typical = np.median(distances[np.ix_(train, train)])
    best = None
    for gamma in (0.25, 0.5, 1.0, 2.0):
        kernel = np.exp(-gamma * distances / typical)
        for ridge in (1e-3, 1e-2, 1e-1, 1.0):
            weights = np.linalg.solve(kernel[np.ix_(train, train)] + ridge * np.eye(train.sum()), kernel[train])
            predictions = means + centred @ weights
            score = pearson(predictions, expression, split == VALIDATION)
            if best is None or score > best[0]:
                best = (score, gamma, ridge, pearson(predictions, expression, split == TEST))
    score, gamma, ridge, test = best
    print(f"held-out conditions, RBF kernel ridge (bandwidth factor {gamma}, ridge {ridge}; {validation.sum()} "
          f"validation conditions): validation r {score:.4f}, test r {test:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", action="store_true", help="random pairs: stack low-rank completion + trans ridge")
    parser.add_argument("--kernel", action="store_true", help="held-out conditions: RBF kernel ridge")
    args = parser.parse_args()
    if args.stack:
        stack_random()
    if args.kernel:
        kernel_conditions()


if __name__ == "__main__":
    main()
