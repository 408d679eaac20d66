"""Optimizers whose updates work in place, so a 62 M-weight fusion kernel needs no extra copies.

Keras' SGD computes `momentum * m - learning_rate * g` as a new tensor before assigning it: two
temporaries the size of each weight. For the tensor-product kernel (120,832 x 512 floats, 247 MB)
those temporaries set the peak memory of a training step. `InPlaceSGD` applies the same update in
steps that each need at most one temporary.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="deepreg")
class InPlaceSGD(keras.optimizers.SGD):
    """Keras SGD (same arguments, same updates: m <- momentum m - lr g; w <- w + m) done in place."""

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(gradient, learning_rate))
            return
        momentum = ops.cast(self.momentum, variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        self.assign(m, ops.multiply(m, momentum))
        self.assign_sub(m, ops.multiply(gradient, learning_rate))
        if self.nesterov:
            self.assign_add(variable, ops.multiply(m, momentum))
            self.assign_sub(variable, ops.multiply(gradient, learning_rate))
        else:
            self.assign_add(variable, m)
