"""Reproduce the paper's setups on the real yeast compendium, next to baselines that need no network.

For each split (random pairs, held-out genes, held-out conditions, both held out) it fits every
baseline of `deepreg.models.baselines` on the training pairs and trains the networks of
`configs/experiments/` on the same pairs, then scores everything on the same test pairs: MSE,
Pearson r and 3-class accuracy (down <= -0.5, baseline, up >= 0.5), over all targets and with the
472 regulators left out of the scored targets (their own expression is an input). Networks are
tracked in MLflow like any run.

    python benchmarks/reproduce_paper.py [--splits random genes] [--epochs 30] [--max-genes N]
        [--experiments tensor-regression concat-classification] [--skip-network] [--markdown FILE]

Paper anchors: Pearson r 0.82 (regression, random pairs); 3-class accuracy 77.0 % (tensor product),
79.5 % (concatenation); GeneClass 60.9 %, BDTree 62.9 %.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepreg.data.dataset import Dataset, load_dataset
from deepreg.data.splits import TEST
from deepreg.models.baselines import expression_classes, run_all_baselines, score
from deepreg.training.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("random", "genes", "conditions", "genes_and_conditions")
EXPERIMENTS = ("tensor-regression", "tensor-classification", "concat-classification")
PAPER = pd.DataFrame([
    {"split": "random", "model": "paper: DeepREG 2017 regression", "r": 0.82},
    {"split": "random", "model": "paper: DeepREG 2017 tensor product (3-class)", "accuracy": 0.770},
    {"split": "random", "model": "paper: DeepREG 2017 concatenation (3-class)", "accuracy": 0.795},
    {"split": "random", "model": "paper: GeneClass (boosted trees on motifs)", "accuracy": 0.609},
    {"split": "random", "model": "paper: BDTree", "accuracy": 0.629},
])


def regulator_free_targets(dataset: Dataset) -> np.ndarray:
    regulators = set(dataset.regulators)
    return np.array([gene not in regulators for gene in dataset.genes])


def baseline_rows(dataset: Dataset, split: np.ndarray, split_name: str) -> list[dict]:
    expression = dataset.expression
    started = time.perf_counter()
    everything = run_all_baselines(expression, split, dataset.regulator_inputs(), dataset.sequences)
    without = run_all_baselines(expression, split, dataset.regulator_inputs(), dataset.sequences,
                                targets_mask=regulator_free_targets(dataset))
    print(f"  baselines on split {split_name}: {time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    for (_, row), (_, excluded) in zip(everything.iterrows(), without.iterrows()):
        rows.append({"split": split_name, "model": f"baseline: {row['name']}", "mse": row["mse"], "r": row["r"],
                     "accuracy": row["accuracy"], "r_no_regulators": excluded["r"],
                     "accuracy_no_regulators": excluded["accuracy"], "n": row["n"],
                     "seconds": row["seconds"], "note": row["hyperparameter"]})
    return rows


def network_row(experiment: str, dataset: Dataset, split_name: str, epochs: int, max_genes: int | None,
                tracking_uri: str | None) -> dict:
    """Train one experiment config on this split (on `dataset`, which already has the gene subset)."""
    from deepreg.training.evaluate import predict_matrix
    from deepreg.training.run import tracked_training

    overrides = {"data.split": split_name, "training.epochs": epochs}
    if max_genes:
        overrides["data.max_genes"] = max_genes
    config = RunConfig.from_files(ROOT / "configs" / "experiments" / f"{experiment}.yaml", overrides=overrides)
    run = tracked_training(config, experiment="reproduce-paper", tracking_uri=tracking_uri,
                           run_name=f"{experiment}-{split_name}", verbose=2, dataset=dataset)
    split = dataset.split(config.data)
    rows = np.flatnonzero((split == TEST).any(axis=1))
    predicted = np.full(dataset.expression.shape, np.nan, dtype=np.float32)
    raw = predict_matrix(run.result.model, dataset.sequences, dataset.regulator_inputs(), rows)
    if config.model.task == "classification":
        predicted[rows] = _class_to_value(raw.argmax(axis=-1), config.data.class_thresholds)
    else:
        predicted[rows] = raw
    everything = score(predicted, dataset.expression, split, TEST, thresholds=config.data.class_thresholds)
    excluded = score(predicted, dataset.expression, split, TEST, regulator_free_targets(dataset),
                     config.data.class_thresholds)
    regression = config.model.task == "regression"
    return {"split": split_name, "model": f"network: {experiment}", "mse": everything["mse"] if regression else np.nan,
            "r": everything["r"] if regression else np.nan, "accuracy": everything["accuracy"],
            "r_no_regulators": excluded["r"] if regression else np.nan,
            "accuracy_no_regulators": excluded["accuracy"], "n": everything["n"],
            "seconds": run.result.seconds, "note": f"{run.result.epochs_run} epochs, run {run.run_id[:8]}"}


def _class_to_value(classes: np.ndarray, thresholds) -> np.ndarray:
    """Map predicted classes onto values that `score` re-classifies identically (down/base/up)."""
    low, high = thresholds
    return np.choose(classes, [low - 1.0, (low + high) / 2.0, high + 1.0]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), choices=EXPERIMENTS)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--max-genes", type=int, default=None,
                        help="a fixed random subset of genes, for baselines and networks alike")
    parser.add_argument("--skip-network", action="store_true", help="baselines only")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table as markdown")
    args = parser.parse_args()

    rows = []
    for split_name in args.splits:
        config = RunConfig.from_files(ROOT / "configs" / "experiments" / "tensor-regression.yaml",
                                      overrides={"data.split": split_name, "data.max_genes": args.max_genes})
        dataset = load_dataset(config.data)
        split = dataset.split(config.data)
        print(f"split {split_name}: {dataset.n_genes:,} genes x {dataset.n_conditions} conditions", flush=True)
        rows.extend(baseline_rows(dataset, split, split_name))
        if not args.skip_network:
            for experiment in args.experiments:
                rows.append(network_row(experiment, dataset, split_name, args.epochs, args.max_genes,
                                        args.tracking_uri))
    table = pd.concat([pd.DataFrame(rows), PAPER], ignore_index=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    if args.markdown:
        args.markdown.write_text(markdown_table(table))


def markdown_table(table: pd.DataFrame) -> str:
    def cell(value):
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.3f}"
        return str(value)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
