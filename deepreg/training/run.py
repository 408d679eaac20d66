"""A run: one configuration (`RunConfig`) trained end to end and recorded in MLflow.

`tracked_training` loads the data, fits the model and logs everything a reader of the run needs:
all config values as params, per-epoch learning curves as step metrics, validation and test scores,
figures, the resolved config, the data fingerprint and the model in Keras format.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

import keras
import mlflow
import numpy as np

from deepreg._files import disk_full_cause
from deepreg._signals import interruption_reason
from deepreg.data.dataset import Dataset, load_dataset
from deepreg.data.splits import describe
from deepreg.errors import DeepRegError
from deepreg.tracking import plots
from deepreg.tracking.callbacks import MlflowEpochLogger
from deepreg.tracking.liveness import process_tags
from deepreg.tracking.store import DEFAULT_EXPERIMENT, ensure_experiment, use_tracking
from deepreg.tracking.tags import REASON_TAG, STATE_TAG
from deepreg.training.config import RunConfig
from deepreg.training.train import TrainingResult, fit

log = logging.getLogger(__name__)
MODEL_ARTIFACT = "model"


class StopTrial(Exception):
    """Raised by a callback to end a run early in a named state, e.g. `StopTrial("pruned", why)`.

    `tracked_training` marks the run with tags `deepreg.state` and `deepreg.reason`; a pruned run
    ends as KILLED (stopped on purpose), any other state as FAILED. Sweeps raise it; training knows
    nothing about the search engine that asked.
    """

    def __init__(self, state: str, reason: str):
        super().__init__(reason)
        self.state = state
        self.reason = reason


@dataclasses.dataclass
class TrackedRun:
    run_id: str
    experiment_id: str
    model_uri: str
    result: TrainingResult
    dataset: Dataset


def tracked_training(config: RunConfig, *, experiment: str = DEFAULT_EXPERIMENT, tracking_uri: str | None = None,
                     run_name: str | None = None, tags: Mapping[str, str] | None = None,
                     parent_run_id: str | None = None, callbacks=(), verbose: int | str = "auto",
                     dataset: Dataset | None = None) -> TrackedRun:
    """Train `config` inside a new MLflow run (nested under `parent_run_id` when given)."""
    dataset = dataset or load_dataset(config.data)
    use_tracking(tracking_uri)
    experiment_id = ensure_experiment(experiment, tracking_uri)
    client = mlflow.MlflowClient()
    run_tags = {"deepreg.data_fingerprint": dataset.fingerprint, "deepreg.model_name": config.model.name,
                **process_tags(), **(tags or {})}
    if parent_run_id:
        run_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, run_name=run_name or config.model.name, tags=run_tags)
    run_id = run.info.run_id
    try:
        _log_params(client, run_id, config, dataset)
        result = fit(dataset, config.data, config.model, config.training,
                     callbacks=[MlflowEpochLogger(run_id, client), *callbacks], verbose=verbose)
        model_uri = _log_outcome(client, run_id, config, result, dataset)
    except StopTrial as stop:
        _set_tags(client, run_id, {STATE_TAG: stop.state, REASON_TAG: stop.reason})
        if stop.state != "pruned":
            client.set_tag(run_id, "deepreg.error", stop.reason[:5000])
        client.set_terminated(run_id, "KILLED" if stop.state == "pruned" else "FAILED")
        raise
    except KeyboardInterrupt as interrupt:
        _set_tags(client, run_id, {"deepreg.stopped_by": "interrupt", STATE_TAG: "interrupted",
                                   REASON_TAG: interruption_reason(interrupt)})
        client.set_terminated(run_id, "KILLED")
        raise
    except BaseException as error:
        message = f"{type(error).__name__}: {error}"
        if disk_full_cause(error) is not None:
            message += "; its partial artifacts were removed"
            _remove_local_artifacts(client, run_id)
        _set_tags(client, run_id, {"deepreg.error": message, STATE_TAG: "failed", REASON_TAG: message})
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_tag(run_id, STATE_TAG, "finished")
    client.set_terminated(run_id, "FINISHED")
    return TrackedRun(run_id=run_id, experiment_id=experiment_id, model_uri=model_uri, result=result, dataset=dataset)


def _remove_local_artifacts(client: mlflow.MlflowClient, run_id: str) -> None:
    """Delete a failed run's local artifact folder, so that no half-written model or figure stays behind."""
    location = client.get_run(run_id).info.artifact_uri
    if location.startswith("file:"):
        shutil.rmtree(Path(urlparse(location).path), ignore_errors=True)


def _set_tags(client: mlflow.MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    client.log_batch(run_id, tags=[mlflow.entities.RunTag(key, str(value)[:5000]) for key, value in tags.items()])


def _log_params(client: mlflow.MlflowClient, run_id: str, config: RunConfig, dataset: Dataset) -> None:
    params = {**config.to_params(), "data.fingerprint": dataset.fingerprint}
    items = [mlflow.entities.Param(key, value[:6000]) for key, value in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start:start + 100])
    client.log_dict(run_id, {**dataset.summary, "pairs": describe(dataset.observed_split(config.data))},
                    "data_summary.json")
    client.log_text(run_id, config.to_yaml(), "config.yaml")


def _log_outcome(client: mlflow.MlflowClient, run_id: str, config: RunConfig, result: TrainingResult,
                 dataset: Dataset) -> str:
    metrics = {"epochs_run": result.epochs_run, "train_seconds": result.seconds}
    for key, value in result.notes.items():
        if isinstance(value, (int, float)):
            metrics[key] = float(value)
        else:
            client.set_tag(run_id, f"deepreg.{key}", str(value))
    for split_name, scores in result.scores.items():
        for key, value in scores.items():
            if isinstance(value, (int, float)):
                metrics[f"{split_name}_{key}"] = float(value)
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[mlflow.entities.Metric(k, v, now, 0) for k, v in metrics.items()])
    client.log_dict(run_id, result.scores, "scores.json")
    with tempfile.TemporaryDirectory() as folder:
        figure_dir = Path(folder)
        plots.learning_curves(result.history, figure_dir / "learning_curves.png")
        _test_figure(config, result, figure_dir)
        for figure in figure_dir.iterdir():
            client.log_artifact(run_id, str(figure), "figures")
    with mlflow.start_run(run_id=run_id):
        info = mlflow.keras.log_model(result.model, name=MODEL_ARTIFACT, pip_requirements=_requirements(),
                                      signature=_model_signature(result.model, dataset, config))
    client.set_tag(run_id, "deepreg.model_uri", info.model_uri)
    return info.model_uri


def _model_signature(model: keras.Model, dataset: Dataset, config: RunConfig):
    """What the block model reads and returns, from two genes x two conditions of the data: MLflow
    records it with the model (and otherwise warns on every run that there is none)."""
    from mlflow.models import infer_signature

    from deepreg.data.encoding import as_model_input

    genes = np.arange(min(2, dataset.n_genes))
    conditions = np.arange(min(2, dataset.n_conditions))
    background = config.data.background if config.data.n_encoding == "background" else None
    inputs = {"sequence": as_model_input(dataset.sequences[genes], background),
              "regulators": dataset.regulator_inputs()[conditions]}
    if config.model.uses_gene_index:
        inputs.update(gene=genes.astype(np.int32), condition=conditions.astype(np.int32))
    outputs = keras.ops.convert_to_numpy(model(inputs, training=False))
    return infer_signature(inputs, outputs)


def _test_figure(config: RunConfig, result: TrainingResult, folder: Path) -> None:
    if "test" not in result.scores:
        return
    if config.model.task == "classification":
        plots.confusion(result.scores["test"]["confusion_percent"], folder / "test_confusion.png")
        return
    predicted, observed = result.test_pairs
    plots.predicted_vs_observed(predicted, observed, folder / "test_predicted_vs_observed.png")


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version
    requirements = [f"keras=={keras.__version__}"]
    for package in ("tensorflow-cpu", "tensorflow"):
        try:
            requirements.append(f"{package}=={version(package)}")
            break
        except PackageNotFoundError:
            continue
    return requirements


def load_model(model_uri: str) -> keras.Model:
    """Load a logged DeepREG model (any MLflow model URI) with its custom layers registered."""
    import deepreg.models.layers  # noqa: F401  (registers the custom layers)
    import deepreg.training.losses  # noqa: F401
    try:
        return mlflow.keras.load_model(model_uri)
    except mlflow.exceptions.MlflowException as error:
        raise DeepRegError(f"model {model_uri}: cannot be loaded ({error})") from None
