"""Keras callback that writes each epoch's scores to the active MLflow run as step metrics."""

from __future__ import annotations

import math
import time

import keras
import mlflow


class MlflowEpochLogger(keras.callbacks.Callback):
    """Log every finite scalar of the epoch's logs at step = epoch (1-based): the learning curves."""

    def __init__(self, run_id: str, client: mlflow.MlflowClient | None = None):
        super().__init__()
        self.run_id = run_id
        self.client = client or mlflow.MlflowClient()

    def on_epoch_end(self, epoch, logs=None):
        metrics = [mlflow.entities.Metric(key=key, value=float(value), timestamp=_now_ms(), step=epoch + 1)
                   for key, value in (logs or {}).items()
                   if isinstance(value, (int, float)) and math.isfinite(float(value))]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)


def _now_ms() -> int:
    return int(time.time() * 1000)
