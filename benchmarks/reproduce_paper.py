"""Reproduce the paper's setups on the real yeast compendium, next to baselines that need no network.

For each split (random pairs, held-out genes, held-out conditions, both held out) it fits every
baseline of `deepreg.baselines` on the training pairs and trains the networks of
`configs/experiments/` on the same pairs, then scores everything on the same test pairs: MSE,
Pearson r and 3-class accuracy (down <= -0.5, baseline, up >= 0.5), over all targets and with the
472 regulators left out of the scored targets (their own expression is an input). Networks are
tracked in MLflow like any run; with several `--seeds` a network row is the mean over the seeds
(`r_sd` their standard deviation).

`--experiments bilinear` (the default) trains each split's own config, `bilinear-SPLIT.yaml` (the
two-tower family); `--variants` adds its pure-network form (`pure`: no baseline offset) and, where
the split allows one, the form without the per-gene embedding (`no-embedding`), and for a config
without an offset its form on the best baseline's residual (`offset`).

    python benchmarks/reproduce_paper.py [--splits random genes] [--epochs N] [--max-genes N]
        [--experiments bilinear tensor-regression] [--seeds 0 1 2] [--variants main pure no-embedding]
        [--variant-seeds 0]
        [--skip-network] [--markdown FILE] [--json FILE] [--set KEY=VALUE ...]

`--set` applies to every config the script reads, so the same comparison runs on a compendium of
your own (the README's "Your own data" recipe): `--set data.bundle=null --set data.expression=FILE
--set data.promoters=FILE --set data.regulators=FILE`.

Paper anchors: Pearson r 0.82 (regression, random pairs); 3-class accuracy 77.0 % (tensor product),
79.5 % (concatenation); GeneClass 60.9 %, BDTree 62.9 %.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepreg._config import parse_overrides
from deepreg.data.dataset import Dataset, load_dataset
from deepreg.data.splits import TEST
from deepreg.baselines import fit_all_baselines, score, score_baselines
from deepreg.training.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("random", "genes", "conditions", "genes_and_conditions")
EXPERIMENTS = ("bilinear", *sorted(path.stem for path in (ROOT / "configs" / "experiments").glob("*.yaml")))
VARIANTS = {"main": {}, "pure": {"model.offset": "none"}, "no-embedding": {"model.gene_embedding": False},
            "offset": {"model.offset": "best"}}
JSON_KEYS = ("split", "model", "r", "r_sd", "mse", "accuracy", "r_no_regulators", "n", "seconds", "seeds", "command")
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
    fitted = fit_all_baselines(expression, split, dataset.regulator_inputs(), dataset.sequences)
    everything = score_baselines(fitted, expression, split)
    without = score_baselines(fitted, expression, split, targets_mask=regulator_free_targets(dataset))
    print(f"  baselines on split {split_name}: {time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    for (_, row), (_, excluded) in zip(everything.iterrows(), without.iterrows()):
        rows.append({"split": split_name, "model": f"baseline: {row['name']}", "mse": row["mse"], "r": row["r"],
                     "accuracy": row["accuracy"], "r_no_regulators": excluded["r"],
                     "accuracy_no_regulators": excluded["accuracy"], "n": row["n"],
                     "seconds": row["seconds"], "note": row["hyperparameter"]})
    return rows


def experiment_file(experiment: str, split_name: str) -> Path:
    """`bilinear` names each split's own config; any other name is one config for every split."""
    name = f"bilinear-{split_name.replace('_', '-')}" if experiment == "bilinear" else experiment
    return ROOT / "configs" / "experiments" / f"{name}.yaml"


def variant_applies(config: RunConfig, variant: str) -> bool:
    changes = VARIANTS[variant]
    return all(getattr(config.model, key.split(".")[1]) != value for key, value in changes.items())


def network_rows(experiment: str, dataset: Dataset, split_name: str, args) -> list[dict]:
    """One row per variant of an experiment on this split: mean and sd over the seeds."""
    rows = []
    base = RunConfig.from_files(experiment_file(experiment, split_name),
                                overrides={**args.overrides, "data.split": split_name})
    for variant in args.variants:
        if not variant_applies(base, variant):
            continue
        seeds = args.seeds if variant == "main" or args.variant_seeds is None else args.variant_seeds
        results = [network_row(experiment, dataset, split_name, args, variant, seed) for seed in seeds]
        rows.append(_mean_over_seeds(results, seeds))
    return rows


def _mean_over_seeds(rows: list[dict], seeds) -> dict:
    merged = dict(rows[0])  # the first seed's learning curves stand for the row
    for key in ("mse", "r", "accuracy", "r_no_regulators", "accuracy_no_regulators", "seconds"):
        merged[key] = float(np.mean([row[key] for row in rows]))
    merged["r_sd"] = float(np.std([row["r"] for row in rows], ddof=1)) if len(rows) > 1 else float("nan")
    merged["seeds"] = list(seeds)
    merged["note"] = "; ".join(row["note"] for row in rows)
    return merged


def network_row(experiment: str, dataset: Dataset, split_name: str, args, variant: str = "main",
                seed: int = 0) -> dict:
    """Train one experiment config on this split (on `dataset`, which already has the gene subset)."""
    from deepreg.training.evaluate import predict_matrix
    from deepreg.training.run import tracked_training

    overrides = {**args.overrides, "data.split": split_name, "training.seed": seed, **VARIANTS[variant]}
    if args.epochs:
        overrides["training.epochs"] = args.epochs
    if args.max_genes:
        overrides["data.max_genes"] = args.max_genes
    config = RunConfig.from_files(experiment_file(experiment, split_name), overrides=overrides)
    label = config.model.name if variant == "main" else f"{config.model.name} ({variant})"
    run = tracked_training(config, experiment="reproduce-paper", tracking_uri=args.tracking_uri,
                           run_name=f"{label}-{split_name}-seed{seed}", verbose=2, dataset=dataset)
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
    return {"split": split_name, "model": f"network: {_describe(config, run.result.notes.get('offset'))}",
            "mse": everything["mse"] if regression else np.nan,
            "r": everything["r"] if regression else np.nan, "accuracy": everything["accuracy"],
            "r_no_regulators": excluded["r"] if regression else np.nan,
            "accuracy_no_regulators": excluded["accuracy"], "n": everything["n"],
            "seconds": run.result.seconds, "seeds": [seed], "history": run.result.history,
            "note": f"seed {seed}: {run.result.epochs_run} epochs (best {run.result.notes.get('best_epoch', '?')}), "
                    f"run {run.run_id[:8]}" + (f", offset {run.result.notes['offset']}" if 'offset' in run.result.notes
                                               else "")}


def _describe(config: RunConfig, chosen_offset: str | None) -> str:
    """The row's model name, saying whether it is baseline + network or the network alone."""
    model = config.model
    offset = f"{model.offset}: {chosen_offset}" if model.offset == "best" and chosen_offset else model.offset
    kind = "network alone" if model.offset == "none" else f"baseline ({offset}) + network"
    embedding = ", gene embedding" if model.gene_embedding else ""
    profile = ", expression profile" if model.profile.enabled else ""
    ensemble = f", mean of {config.training.ensemble} seeds" if config.training.ensemble > 1 else ""
    return f"{model.name} [{kind}{embedding}{profile}{ensemble}]"


def _class_to_value(classes: np.ndarray, thresholds) -> np.ndarray:
    """Map predicted classes onto values that `score` re-classifies identically (down/base/up)."""
    low, high = thresholds
    return np.choose(classes, [low - 1.0, (low + high) / 2.0, high + 1.0]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--experiments", nargs="+", default=["bilinear"], choices=EXPERIMENTS)
    parser.add_argument("--epochs", type=int, default=None, help="override each config's training.epochs")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (a row is their mean)")
    parser.add_argument("--variants", nargs="+", default=["main"], choices=list(VARIANTS))
    parser.add_argument("--variant-seeds", nargs="+", type=int, default=None,
                        help="seeds for the variants other than main (default: --seeds)")
    parser.add_argument("--max-genes", type=int, default=None,
                        help="a fixed random subset of genes, for baselines and networks alike")
    parser.add_argument("--skip-network", action="store_true", help="baselines only")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table as markdown")
    parser.add_argument("--json", type=Path, default=None, help="also write the records as JSON")
    parser.add_argument("--update", action="store_true",
                        help="with --json: replace only this run's (split, model) records in the file")
    parser.add_argument("--curves", type=Path, default=None,
                        help="also draw each network's learning curves (first seed) into this PNG")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of every config read, e.g. data.expression=my.pcl (repeatable)")
    args = parser.parse_args()
    args.overrides = parse_overrides(args.overrides)

    rows = []
    for split_name in args.splits:
        config = RunConfig.from_files(experiment_file(args.experiments[0], split_name),
                                      overrides={**args.overrides, "data.split": split_name,
                                                 "data.max_genes": args.max_genes})
        dataset = load_dataset(config.data)
        split = dataset.split(config.data)
        print(f"split {split_name}: {dataset.n_genes:,} genes x {dataset.n_conditions} conditions", flush=True)
        rows.extend(baseline_rows(dataset, split, split_name))
        if not args.skip_network:
            for experiment in args.experiments:
                rows.extend(network_rows(experiment, dataset, split_name, args))
    table = pd.concat([pd.DataFrame(rows).drop(columns=["history"], errors="ignore"), PAPER], ignore_index=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    if args.markdown:
        args.markdown.write_text(markdown_table(table))
    if args.json:
        write_json(rows, args.json, update=args.update)
    if args.curves:
        draw_curves(rows, args.curves)


def draw_curves(rows: list[dict], path: Path) -> None:
    """Training and validation MSE per epoch, one panel per split, one colour per network row."""
    from deepreg._plotting import pyplot

    plt = pyplot()
    networks = [row for row in rows if row.get("history")]
    splits = list(dict.fromkeys(row["split"] for row in networks))
    if not splits:
        return
    columns = min(2, len(splits))
    rows_of_panels = -(-len(splits) // columns)
    figure, axes = plt.subplots(rows_of_panels, columns, figsize=(6.5 * columns, 4.2 * rows_of_panels), squeeze=False)
    for axis in axes.ravel()[len(splits):]:
        axis.set_visible(False)
    for axis, split_name in zip(axes.ravel(), splits):
        for index, row in enumerate(row for row in networks if row["split"] == split_name):
            history, colour = row["history"], f"C{index}"
            epochs = range(1, len(history.get("val_mse", [])) + 1)
            label = row["model"].removeprefix("network: ")
            axis.plot(epochs, history.get("train_mse", []), color=colour, linestyle="--")
            axis.plot(epochs, history.get("val_mse", []), color=colour, label=label)
        axis.set_title(f"{split_name}: validation (solid), training (dashed)", fontsize=8)
        axis.set_xlabel("epoch")
        axis.set_ylabel("MSE")
        axis.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_json(rows: list[dict], path: Path, update: bool = False) -> None:
    """The records the docs cite: one per split x model, with the command that made them.

    With `update`, the records already in `path` are kept, except those of the same split and model,
    which the new ones replace (each record keeps the command that made it)."""
    command = "python benchmarks/reproduce_paper.py " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])

    def plain(value):
        if isinstance(value, (float, np.floating)):
            return None if np.isnan(value) else round(float(value), 4)
        if isinstance(value, np.integer):
            return int(value)
        return value

    records = [{key: plain(row.get(key, [] if key == "seeds" else np.nan)) for key in JSON_KEYS if key != "command"}
               | {"command": command} for row in rows]
    if update and path.is_file():
        fresh = {(record["split"], record["model"]) for record in records}
        kept = [record for record in json.loads(path.read_text()) if (record["split"], record["model"]) not in fresh]
        order = {split: index for index, split in enumerate(SPLITS)}
        records = sorted(kept + records, key=lambda record: (order.get(record["split"], 9),
                                                            not record["model"].startswith("baseline")))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1) + "\n")


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
