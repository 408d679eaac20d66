"""Where runs go: the MLflow tracking store (a local SQLite database by default) and experiments.

A tracking URI is checked before anything is written (`check_tracking_uri`): a SQLite file must be
creatable where it points, an HTTP server must accept a connection, and MLflow's retired file store
(a plain path or `file:`) is refused unless MLflow is told to allow it. Whatever still fails when
the store is opened becomes one `DeepRegError` line naming the URI.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import mlflow

from deepreg.errors import DeepRegError
from deepreg.tracking.liveness import reap_dead_runs

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_ARTIFACT_ROOT = "mlruns"
DEFAULT_EXPERIMENT = "deepreg"
CONNECT_SECONDS = 5.0
EXPECTED = "expected sqlite:///PATH/mlflow.db or http(s)://HOST:PORT"


def resolve_tracking_uri(uri: str | None = None, *, create: bool = True) -> str:
    """The tracking URI: the given one, else MLFLOW_TRACKING_URI, else the local SQLite store.

    It is checked (`check_tracking_uri`); with `create`, the folder of a relative SQLite file is made.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    check_tracking_uri(uri)
    if create and uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _unusable(uri, f"cannot make folder {folder} ({error.strerror})") from None
    return uri


def check_tracking_uri(uri: str) -> None:
    """Refuse a tracking URI that cannot work, without writing anything."""
    scheme = urlparse(uri).scheme.lower()
    if scheme == "sqlite":
        _check_sqlite_location(uri)
    elif scheme in ("http", "https"):
        _check_server_reachable(uri)
    elif scheme in ("", "file") or len(scheme) == 1:  # a path (a Windows drive letter parses as a scheme)
        from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE
        if not MLFLOW_ALLOW_FILE_STORE.get():
            raise _unusable(uri, "a plain path or file: URI is MLflow's retired file store, which this MLflow "
                                 f"refuses (set MLFLOW_ALLOW_FILE_STORE=true to use it anyway); {EXPECTED}")


def _unusable(uri: str, why: str) -> DeepRegError:
    return DeepRegError(f"tracking URI {uri!r} (--tracking-uri or MLFLOW_TRACKING_URI): {why}")


def _check_sqlite_location(uri: str) -> None:
    """The database file, or the nearest folder above it that exists, must take new files."""
    text = uri.removeprefix("sqlite:///")
    if not text or text.startswith("?"):
        raise _unusable(uri, f"no database file named; {EXPECTED}")
    database = Path(text.split("?", 1)[0])
    if database.is_dir():
        raise _unusable(uri, f"{database} is a folder, expected a database file")
    existing = database.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise _unusable(uri, f"{existing} is a file, not a folder, so {database} cannot be made under it")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".deepreg-probe-", dir=existing))
    except OSError as error:
        raise _unusable(uri, f"cannot write under {existing} ({error.strerror})") from None


def _check_server_reachable(uri: str) -> None:
    parsed = urlparse(uri)
    port = parsed.port or (443 if parsed.scheme.lower() == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=CONNECT_SECONDS):
            pass
    except OSError as error:
        raise _unusable(uri, f"no tracking server answers at {parsed.hostname}:{port} "
                             f"({error.strerror or error}); start it or give another URI") from None


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


# MLflow 3's UI opens an experiment on its GenAI overview unless the experiment is tagged as model
# training; its global GenAI / Model training switch still wins over the tag, so the commands also
# print a runs-page link with `?workflowType=machine_learning` (`deepreg.sweeps.ui_runs_url`).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"


def ensure_experiment(name: str = DEFAULT_EXPERIMENT, uri: str | None = None) -> str:
    """The id of experiment `name`, created on first use (restored if it was deleted).

    Opening the store also marks FAILED the runs of this host whose process died (`reap_dead_runs`).
    """
    uri = use_tracking(uri)
    client = mlflow.MlflowClient(uri)
    try:
        reap_dead_runs(client)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            return client.create_experiment(name, artifact_location=_artifact_location(uri),
                                            tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING_KIND:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
        return experiment.experiment_id
    except DeepRegError:
        raise
    except Exception as error:  # MLflow, SQLAlchemy and OS errors of a store that cannot be used
        raise _unusable(uri, f"the store cannot be opened ({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__
