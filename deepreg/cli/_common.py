"""Options and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import sys

from deepreg._config import parse_overrides  # noqa: F401 - the subcommands take it from here, with add_override_option


def add_tracking_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)")
    parser.add_argument("--experiment", default="deepreg", help="MLflow experiment name (default: deepreg)")


def add_override_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value by its dotted key, e.g. --set training.epochs=5 (repeatable)")


def keras_verbosity() -> int:
    """A live progress bar on a terminal, one line per epoch in logs."""
    return 1 if sys.stdout.isatty() else 2


def mlflow_ui_hint(tracking_uri: str) -> str:
    return f"mlflow ui --backend-store-uri {tracking_uri}"


def runs_page(outcome) -> str:
    """The MLflow UI's runs table of a study's experiment, in the model-training view (not GenAI)."""
    import mlflow

    from deepreg.sweeps import ui_runs_url

    run = mlflow.MlflowClient(outcome.tracking_uri).get_run(outcome.parent_run_id)
    return ui_runs_url(run.info.experiment_id)
