"""`deepreg demo`: the notebook's best model on bundled data, tracked in MLflow, in a few minutes."""

from __future__ import annotations

import argparse
import time
from importlib import resources

import numpy as np

from deepreg.cli._common import add_tracking_options, keras_verbosity, mlflow_ui_hint
from deepreg.errors import DeepRegError

DEMO_DATA = ("yeast", "simulated")


def register(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="train the notebook's best model on bundled data and log it to MLflow",
                                 description=__doc__)
    demo.add_argument("--data", choices=DEMO_DATA, default=None,
                      help="bundled dataset (default: yeast when bundled, else simulated)")
    demo.add_argument("--epochs", type=int, default=None, help="override the demo's number of epochs")
    add_tracking_options(demo)
    demo.set_defaults(func=run_demo)


def demo_config_path(data: str):
    path = resources.files("deepreg") / "configs" / f"demo-{data}.yaml"
    if not path.is_file():
        raise DeepRegError(f"no demo configuration for data {data!r} ({path} is missing)")
    return path


def default_demo_data() -> str:
    bundled = resources.files("deepreg") / "bundled"
    return next((name for name in DEMO_DATA if demo_config_path_exists(name) and (bundled / name).is_dir()), "simulated")


def demo_config_path_exists(data: str) -> bool:
    return (resources.files("deepreg") / "configs" / f"demo-{data}.yaml").is_file()


def run_demo(args: argparse.Namespace) -> int:
    from deepreg.data.dataset import load_dataset
    from deepreg.data.splits import TEST
    from deepreg.models import baselines
    from deepreg.training.config import RunConfig

    started = time.perf_counter()
    data = args.data or default_demo_data()
    overrides = {"training.epochs": args.epochs} if args.epochs else None
    config = RunConfig.from_files(str(demo_config_path(data)), overrides=overrides)
    dataset = load_dataset(config.data)
    print(f"DeepREG demo on the bundled {data} data: {config.model.name} for {config.training.epochs} epochs "
          f"on {dataset.n_genes:,} genes x {dataset.n_conditions} conditions x {dataset.n_regulators} regulators")

    from deepreg.tracking.store import resolve_tracking_uri
    from deepreg.training.run import tracked_training

    uri = resolve_tracking_uri(args.tracking_uri)
    run = tracked_training(config, experiment=args.experiment, tracking_uri=uri, run_name=f"demo-{data}",
                           tags={"deepreg.demo": data}, verbose=keras_verbosity(), dataset=dataset)
    split = dataset.split(config.data)
    labels = dataset.labels("regression", config.data)
    rows = [("network (" + config.model.name + ")", run.result.scores["test"])]
    for name, predict in (("predict zero", baselines.fit_predict_zero), ("gene mean", baselines.fit_predict_gene_mean)):
        predictions = predict(labels, split)
        rows.append((f"baseline: {name}", baselines.score(predictions, labels, split, which=TEST)))
    print()
    print(f"Test pairs ({run.result.scores['test']['pairs']:,}), {dataset.n_genes:,} genes x "
          f"{dataset.n_conditions} conditions x {dataset.n_regulators} regulators:")
    print(f"  {'model':<40} {'MSE':>8} {'Pearson r':>10}")
    for name, scores in rows:
        print(f"  {name:<40} {scores['mse']:>8.4f} {_r(scores):>10}")
    print()
    print(f"MLflow run {run.run_id} (experiment '{args.experiment}'), model {run.model_uri}")
    print(f"Look at it with:  {mlflow_ui_hint(uri)}")
    print(f"Demo wall time: {time.perf_counter() - started:.0f} s")
    return 0


def _r(scores: dict) -> str:
    value = scores.get("pearson_r", scores.get("r", float("nan")))
    return "n/a" if value is None or np.isnan(value) else f"{value:.4f}"
