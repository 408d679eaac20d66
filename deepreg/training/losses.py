"""Losses over a block of pairs in which NaN labels (other splits, missing cells) do not count."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="deepreg")
class MaskedLoss(keras.losses.Loss):
    """Mean squared error (regression) or cross-entropy (3 classes) over the labelled pairs only.

    Labels are a G_b x C_b matrix: a log-ratio or a class index, NaN where the pair is not scored.
    The NaN labels are replaced before the arithmetic so their gradients are exactly zero.
    """

    def __init__(self, task: str = "regression", name: str | None = None, **kwargs):
        super().__init__(name=name or f"masked_{task}", **kwargs)
        self.task = task

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        scored = ops.logical_not(ops.isnan(y_true))
        safe = ops.where(scored, y_true, ops.zeros_like(y_true))
        if self.task == "regression":
            per_pair = ops.square(safe - y_pred)
        else:
            probabilities = ops.clip(y_pred, 1e-7, 1.0)
            chosen = ops.take_along_axis(probabilities, ops.expand_dims(ops.cast(safe, "int32"), -1), axis=-1)
            per_pair = -ops.log(ops.squeeze(chosen, -1))
        weights = ops.cast(scored, y_pred.dtype)
        return ops.sum(per_pair * weights) / ops.maximum(ops.sum(weights), 1.0)

    def get_config(self):
        return {**super().get_config(), "task": self.task}
