"""Where runs go: the MLflow tracking store (a local SQLite database by default) and experiments."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_ARTIFACT_ROOT = "mlruns"
DEFAULT_EXPERIMENT = "deepreg"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI: the given one, else MLFLOW_TRACKING_URI, else the local SQLite store."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def use_tracking(uri: str | None = None) -> str:
    """Point MLflow at the tracking store and return its URI."""
    uri = resolve_tracking_uri(uri)
    mlflow.set_tracking_uri(uri)
    return uri


def _artifact_location(uri: str) -> str | None:
    """Artifacts of a local SQLite store live beside it, under mlruns/ of the store's folder."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    return (database.parent.resolve() if database.parent != Path("") else Path(DEFAULT_ARTIFACT_ROOT).resolve()).as_uri()


def ensure_experiment(name: str = DEFAULT_EXPERIMENT, uri: str | None = None) -> str:
    """The id of experiment `name`, created on first use (restored if it was deleted)."""
    uri = use_tracking(uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, artifact_location=_artifact_location(uri))
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id
