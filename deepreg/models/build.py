"""Build any point of the architecture space from a `ModelConfig`.

Every network is three shared parts plus a fusion: a sequence tower (promoter -> features), a
regulator tower (regulator expression -> features), a fusion layer (the first head layer) and the
rest of the head. The same parts are composed two ways:

- the block model (`form="block"`): inputs are G_b promoters and C_b regulator vectors, the output is
  the G_b x C_b matrix of predictions; each tower runs once per gene or condition in the block;
- the pair model (`form="pair"`): one promoter and one regulator vector per pair, output one value
  per pair; the fused vector is materialised (the naive reference).

`build_models` returns both on the same weights; saved and logged models are block models.
"""

from __future__ import annotations

import keras

from deepreg.models import layers as fusion_layers
from deepreg.models.config import ModelConfig
from deepreg.models.registry import FUSIONS, SEQUENCE_TOWERS, lookup, register_fusion, register_sequence_tower

SEQUENCE_INPUT, REGULATOR_INPUT = "sequence", "regulators"


def make_regularizer(config: ModelConfig):
    """l1/l2 on all weights, as the notebook's regularised single-layer model."""
    if config.l1 == 0 and config.l2 == 0:
        return None
    return keras.regularizers.L1L2(l1=config.l1, l2=config.l2)


@register_sequence_tower("conv")
def conv_tower(config: ModelConfig, sequence_length: int, regularizer) -> keras.Model:
    """Conv1D layers, each optionally followed by a max-pool (a factor) or a global max over positions."""
    spec = config.sequence
    inputs = keras.Input((sequence_length, 4), name="promoter")
    x = inputs
    for index, (filters, width, pool) in enumerate(
            zip(spec.per_layer("filters"), spec.per_layer("filter_width"), spec.per_layer("pool")), start=1):
        x = keras.layers.Conv1D(filters, width, padding=spec.padding, activation=spec.activation,
                                kernel_regularizer=regularizer, name=f"conv_{index}")(x)
        if pool == "global":
            x = keras.layers.GlobalMaxPooling1D(name=f"global_max_{index}")(x)
        elif pool != "none":
            x = keras.layers.MaxPooling1D(int(pool), strides=int(pool), name=f"max_pool_{index}")(x)
    if len(x.shape) == 3:
        x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, x, name="sequence_tower")


def regulator_tower(config: ModelConfig, n_regulators: int, regularizer) -> keras.Model:
    """Dense layers over the regulator vector, or the raw vector itself when there are none."""
    inputs = keras.Input((n_regulators,), name="regulator_expression")
    x = inputs
    for index, units in enumerate(config.regulators.dense_units, start=1):
        x = keras.layers.Dense(units, activation=config.regulators.activation, kernel_regularizer=regularizer,
                               name=f"regulator_dense_{index}")(x)
    return keras.Model(inputs, x, name="regulator_tower")


@register_fusion("tensor")
def tensor_fusion(config: ModelConfig, regularizer):
    return fusion_layers.TensorProductDense(config.head.dense_units[0], activation=config.head.activation,
                                            kernel_regularizer=regularizer, name="fusion")


@register_fusion("concat")
def concat_fusion(config: ModelConfig, regularizer):
    return fusion_layers.ConcatDense(config.head.dense_units[0], activation=config.head.activation,
                                     kernel_regularizer=regularizer, name="fusion")


def head(config: ModelConfig, regularizer) -> list[keras.layers.Layer]:
    """Dropout and dense layers after the fusion layer, then the output layer.

    A list of layers rather than a sub-model: the same layers act on the last axis of block outputs
    (G_b x C_b x units) and of pair outputs (pairs x units).
    """
    parts: list[keras.layers.Layer] = []
    for index, units in enumerate(config.head.dense_units[1:], start=2):
        parts.append(keras.layers.Dropout(config.head.dropout, name=f"dropout_{index - 1}"))
        parts.append(keras.layers.Dense(units, activation=config.head.activation, kernel_regularizer=regularizer,
                                        name=f"dense_{index}"))
    parts.append(keras.layers.Dropout(config.head.dropout, name=f"dropout_{len(config.head.dense_units)}"))
    activation = None if config.task == "regression" else "softmax"
    parts.append(keras.layers.Dense(config.n_outputs, activation=activation, kernel_regularizer=regularizer,
                                    name="output"))
    return parts


def build_models(config: ModelConfig, sequence_length: int, n_regulators: int) -> tuple[keras.Model, keras.Model]:
    """The block model and the pair model of one architecture, sharing every weight."""
    regularizer = make_regularizer(config)
    sequence_tower = lookup(SEQUENCE_TOWERS, "sequence tower", "model.sequence.tower", config.sequence.tower)(
        config, sequence_length, regularizer)
    regulators = regulator_tower(config, n_regulators, regularizer)
    fusion = lookup(FUSIONS, "fusion", "model.fusion", config.fusion)(config, regularizer)
    top = head(config, regularizer)

    def compose(pairwise: bool, name: str) -> keras.Model:
        sequence_in = keras.Input((sequence_length, 4), name=SEQUENCE_INPUT)
        regulators_in = keras.Input((n_regulators,), name=REGULATOR_INPUT)
        hidden = fusion([sequence_tower(sequence_in), regulators(regulators_in)], pairwise=pairwise)
        outputs = hidden
        for layer in top:
            outputs = layer(outputs)
        if config.task == "regression":
            outputs = fusion_layers.SqueezeLast(name="prediction")(outputs)
        return keras.Model({SEQUENCE_INPUT: sequence_in, REGULATOR_INPUT: regulators_in}, outputs, name=name)

    return compose(False, "deepreg_block"), compose(True, "deepreg_pair")


def build_model(config: ModelConfig, sequence_length: int, n_regulators: int) -> keras.Model:
    """The block model alone (what training, tracking and attribution use)."""
    return build_models(config, sequence_length, n_regulators)[0]
