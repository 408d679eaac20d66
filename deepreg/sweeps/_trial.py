"""One trial, for any engine: the base config plus the trial's values, trained as a child MLflow run.

The engine supplies `report(value, epoch) -> reason or None`, called after every epoch with the
validation value; a reason stops the trial as pruned. A non-finite value stops it as failed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Callable, Mapping

import keras
import numpy as np

from deepreg.training.run import RunConfig, StopTrial, tracked_training

Report = Callable[[float, int], "str | None"]


@dataclasses.dataclass
class Outcome:
    value: float
    run_id: str
    epochs_run: int
    seconds: float
    train_error: float | None
    val_error: float | None
    error_metric: str
    test_score: float | None = None  # test r (regression) or accuracy, for the margin over the baselines


class EpochReporter(keras.callbacks.Callback):
    """Hand each epoch's validation value to the engine; stop the run when it says prune."""

    def __init__(self, key: str, report: Report | None):
        super().__init__()
        self.key, self.report = key, report

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.key)
        if value is None:
            raise StopTrial("failed", f"{self.key} is missing from the epoch logs (no validation pairs?)")
        value = float(value)
        if not math.isfinite(value):
            raise StopTrial("failed", f"{self.key} is {value} at epoch {epoch + 1} (diverged)")
        reason = self.report(value, epoch + 1) if self.report else None
        if reason:
            raise StopTrial("pruned", reason)


class TrialRunner:
    """Turns a trial's overrides into a tracked training run nested under the study's parent run."""

    def __init__(self, spec, *, tracking_uri: str, experiment: str, parent_run_id: str, callbacks=(),
                 verbose: int = 0):
        self.spec = spec
        self.tracking_uri, self.experiment, self.parent_run_id = tracking_uri, experiment, parent_run_id
        self.callbacks, self.verbose = list(callbacks), verbose
        self._datasets: dict[str, Any] = {}

    def config_for(self, overrides: Mapping[str, Any], epochs: int | None = None) -> RunConfig:
        updates = {**overrides, "training.epochs": epochs or self.spec.epochs}
        return self.spec.base.with_updates(updates, source=f"study {self.spec.name}")

    def run(self, overrides: Mapping[str, Any], *, run_name: str, tags: Mapping[str, str],
            report: Report | None = None, epochs: int | None = None) -> Outcome:
        config = self.config_for(overrides, epochs)
        dataset = self.dataset(config)
        objective = self.spec.objective
        run = tracked_training(config, experiment=self.experiment, tracking_uri=self.tracking_uri,
                               run_name=run_name, tags=tags, parent_run_id=self.parent_run_id,
                               callbacks=[EpochReporter(objective.epoch_key, report), *self.callbacks],
                               verbose=self.verbose, dataset=dataset)
        result = run.result
        value = result.scores.get("validation", {}).get(objective.metric)
        value = float(value) if value is not None else float("nan")
        train_error, val_error, metric = _errors_at_best_epoch(result.history, config.model.task)
        test = result.scores.get("test", {}).get("pearson_r" if config.model.task == "regression" else "accuracy")
        return Outcome(value=value, run_id=run.run_id, epochs_run=result.epochs_run, seconds=result.seconds,
                       train_error=train_error, val_error=val_error, error_metric=metric,
                       test_score=float(test) if test is not None else None)

    def dataset(self, config: RunConfig):
        """The dataset of `config`, loaded once per data config (trials and baselines share it)."""
        from deepreg.data.dataset import load_dataset
        key = json.dumps(config.data.to_dict(), sort_keys=True)
        if key not in self._datasets:
            self._datasets[key] = load_dataset(config.data)
        return self._datasets[key]


def _errors_at_best_epoch(history: Mapping[str, list], task: str) -> tuple[float | None, float | None, str]:
    """Training and validation error at the epoch whose weights were kept (the lowest val_loss)."""
    losses = history.get("val_loss") or []
    if not losses:
        return None, None, ""
    best = int(np.nanargmin(losses)) if not all(math.isnan(v) for v in losses) else len(losses) - 1
    if task == "classification":
        train, val = history.get("train_accuracy"), history.get("val_accuracy")
        if train and val:
            return 1.0 - float(train[best]), 1.0 - float(val[best]), "error rate"
        return None, None, ""
    train, val = history.get("train_mse"), history.get("val_mse")
    if train and val:
        return float(train[best]), float(val[best]), "mse"
    return None, None, ""
