"""Keras callback that writes each epoch's scores to the active MLflow run as step metrics."""

from __future__ import annotations

import math
import time

import keras
import mlflow


# Keras's bare "loss" is the mean over the epoch's training batches, with dropout on; in MLflow's
# tables and compare view, next to validation_loss and train_mse, a bare "loss" reads as anything.
MLFLOW_KEYS = {"loss": "train_batch_loss"}


class MlflowEpochLogger(keras.callbacks.Callback):
    """Log every finite scalar of the epoch's logs at step = epoch (1-based): the learning curves.

    Keys are Keras's (`val_loss`, `val_pearson_r`, `train_mse`, ...) except `loss`, logged as
    `train_batch_loss` (see MLFLOW_KEYS).
    """

    def __init__(self, run_id: str, client: mlflow.MlflowClient | None = None):
        super().__init__()
        self.run_id = run_id
        self.client = client or mlflow.MlflowClient()

    def on_epoch_end(self, epoch, logs=None):
        metrics = [mlflow.entities.Metric(key=MLFLOW_KEYS.get(key, key), value=float(value), timestamp=_now_ms(),
                                          step=epoch + 1)
                   for key, value in (logs or {}).items()
                   if isinstance(value, (int, float)) and math.isfinite(float(value))]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)


def _now_ms() -> int:
    return int(time.time() * 1000)
