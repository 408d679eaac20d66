"""Fusion layers that compute a dense layer over (sequence features, regulator features) two ways.

Each layer holds exactly the parameters of a `Dense` layer applied to the fused vector (the
flattened outer product, or the concatenation). Called with `pairwise=True` on one row per pair, it
materialises that vector, as the original network did. Called on a block (sequence features of
G_b genes, regulator features of C_b conditions) it returns the G_b x C_b x units result without
materialising anything per pair: the tensor-product kernel is contracted with one modality first,
then with the other (a bilinear form), and the concatenation kernel is split in two.
"""

from __future__ import annotations

import keras
from keras import ops

CONTRACTIONS = ("auto", "per_gene", "per_condition")


class _FusedDense(keras.layers.Layer):
    """Common parameters and config of the fusion layers."""

    def __init__(self, units: int, activation=None, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def _fused_width(self, sequence_width: int, regulator_width: int) -> int:
        raise NotImplementedError

    def build(self, input_shape):
        sequence_shape, regulator_shape = input_shape
        self.sequence_width = int(sequence_shape[-1])
        self.regulator_width = int(regulator_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=(self._fused_width(self.sequence_width, self.regulator_width), self.units),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros",
                                    regularizer=self.bias_regularizer)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        })
        return config


@keras.saving.register_keras_serializable(package="deepreg")
class TensorProductDense(_FusedDense):
    """Dense layer on the outer product s (x) t, flattened row-major (index f * R + r).

    Block contraction order: `per_gene` contracts the kernel with the sequence features of each
    gene (G_b F R U + G_b C_b R U multiply-adds), `per_condition` with the regulator features of each
    condition (C_b R F U + G_b C_b F U); `auto` picks the cheaper one from the block's shape.
    """

    def __init__(self, units: int, contraction: str = "auto", **kwargs):
        super().__init__(units, **kwargs)
        if contraction not in CONTRACTIONS:
            raise ValueError(f"contraction must be one of {CONTRACTIONS}, got {contraction!r}")
        self.contraction = contraction

    def _fused_width(self, sequence_width, regulator_width):
        return sequence_width * regulator_width

    def call(self, inputs, pairwise: bool = False):
        sequence, regulators = inputs
        if pairwise:
            outer = ops.expand_dims(sequence, 2) * ops.expand_dims(regulators, 1)
            fused = ops.reshape(outer, (-1, self.sequence_width * self.regulator_width))
            return self.activation(ops.matmul(fused, self.kernel) + self.bias)
        kernel = ops.reshape(self.kernel, (self.sequence_width, self.regulator_width, self.units))
        order = self._order(ops.shape(sequence)[0], ops.shape(regulators)[0])
        if order == "per_gene":
            per_gene = ops.reshape(ops.matmul(sequence, ops.reshape(kernel, (self.sequence_width, -1))),
                                   (-1, self.regulator_width, self.units))
            hidden = ops.einsum("gru,cr->gcu", per_gene, regulators)
        else:
            per_condition = ops.einsum("cr,fru->fcu", regulators, kernel)
            hidden = ops.einsum("gf,fcu->gcu", sequence, per_condition)
        return self.activation(hidden + self.bias)

    def _order(self, n_genes, n_conditions) -> str:
        if self.contraction != "auto":
            return self.contraction
        if not isinstance(n_genes, int) or not isinstance(n_conditions, int):
            return "per_gene" if self.regulator_width <= self.sequence_width else "per_condition"
        width_f, width_r = self.sequence_width, self.regulator_width
        per_gene = n_genes * width_f * width_r + n_genes * n_conditions * width_r
        per_condition = n_conditions * width_r * width_f + n_genes * n_conditions * width_f
        return "per_gene" if per_gene <= per_condition else "per_condition"

    def get_config(self):
        return {**super().get_config(), "contraction": self.contraction}


@keras.saving.register_keras_serializable(package="deepreg")
class ConcatDense(_FusedDense):
    """Dense layer on the concatenation [s, t]; in blocks, s and t are projected once each and summed."""

    def _fused_width(self, sequence_width, regulator_width):
        return sequence_width + regulator_width

    def call(self, inputs, pairwise: bool = False):
        sequence, regulators = inputs
        if pairwise:
            fused = ops.concatenate([sequence, regulators], axis=-1)
            return self.activation(ops.matmul(fused, self.kernel) + self.bias)
        from_sequence = ops.matmul(sequence, self.kernel[: self.sequence_width])
        from_regulators = ops.matmul(regulators, self.kernel[self.sequence_width:])
        hidden = ops.expand_dims(from_sequence, 1) + ops.expand_dims(from_regulators, 0)
        return self.activation(hidden + self.bias)


@keras.saving.register_keras_serializable(package="deepreg")
class SqueezeLast(keras.layers.Layer):
    """Drop the trailing unit axis of a regression output (G_b x C_b x 1 -> G_b x C_b)."""

    def call(self, outputs):
        return ops.squeeze(outputs, axis=-1)
