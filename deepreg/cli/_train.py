"""`deepreg train` and `deepreg prepare`."""

from __future__ import annotations

import argparse
import json

from deepreg.cli._common import (add_override_option, add_tracking_options, keras_verbosity, mlflow_ui_hint,
                                 parse_overrides)


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="train one configuration and log the run to MLflow",
                                  description="Train a model from a run YAML (sections data, model, training).")
    train.add_argument("--config", help="run YAML with sections data, model and training (defaults for what is absent)")
    train.add_argument("--model", help="model-only YAML (e.g. configs/models/concat.yaml) replacing the model section")
    train.add_argument("--run-name", help="MLflow run name (default: the model's name)")
    add_override_option(train)
    add_tracking_options(train)
    train.set_defaults(func=run_train)

    prepare = subparsers.add_parser("prepare", help="read the input files into the cached dataset and summarise it",
                                    description="Read and check the input files of a run YAML's data section, write "
                                                "the dataset cache, and print a summary: genes, conditions, "
                                                "regulators, missing cells and the observed pairs of each split.")
    prepare.add_argument("--config", help="run YAML (its data section is used)")
    add_override_option(prepare)
    prepare.set_defaults(func=run_prepare)


def run_train(args: argparse.Namespace) -> int:
    from deepreg.data.dataset import load_dataset
    from deepreg.training.config import RunConfig

    from deepreg.tracking.store import resolve_tracking_uri
    from deepreg.training.run import tracked_training

    config = RunConfig.from_files(args.config, model=args.model, overrides=parse_overrides(args.overrides))
    uri = resolve_tracking_uri(args.tracking_uri, create=False)
    dataset = load_dataset(config.data)
    run = tracked_training(config, experiment=args.experiment, tracking_uri=uri, run_name=args.run_name,
                           verbose=keras_verbosity(), dataset=dataset)
    print(format_scores(run.result.scores))
    print(f"run {run.run_id} in experiment '{args.experiment}'; model {run.model_uri}")
    print(f"look at it with: {mlflow_ui_hint(uri)}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from deepreg.data.dataset import load_dataset
    from deepreg.data.splits import describe
    from deepreg.training.config import RunConfig

    config = RunConfig.from_files(args.config, overrides=parse_overrides(args.overrides)).data
    dataset = load_dataset(config)
    summary = {**dataset.summary, "fingerprint": dataset.fingerprint, "pairs": describe(dataset.observed_split(config)),
               "cache": f"{config.cache_dir}/dataset-{dataset.fingerprint}.h5"}
    print(json.dumps(summary, indent=2))
    return 0


def format_scores(scores: dict) -> str:
    lines = []
    for split_name, values in scores.items():
        shown = [f"{key} {value:.4f}" for key, value in values.items() if isinstance(value, float)]
        lines.append(f"{split_name:>10}: " + ", ".join(shown) + f" ({values.get('pairs', 0):,} pairs)")
    return "\n".join(lines)
