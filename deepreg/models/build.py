"""Build any point of the architecture space from a `ModelConfig`.

Every network is three shared parts plus a fusion: a sequence tower (promoter -> features), a
regulator tower (regulator expression -> features), a fusion layer (the first head layer, or the
recurrent layer of `concat_rnn`) and the rest of the head. The same parts are composed two ways:

- the block model: inputs are G_b promoters and C_b regulator vectors, the output is the G_b x C_b
  matrix of predictions; each tower runs once per gene or condition in the block and the fusion is
  contracted without materialising anything per pair (the `factorised` implementation);
- the pair model: one promoter and one regulator vector per pair, one output per pair; the towers
  run once per pair and the fused vector is materialised (the `naive` reference of the notebook).

`build_models` returns both on the same weights; saved and logged models are block models.
Per-pair randomness differs in one respect: in a block, dropout in the sequence tower and the
reverse-complement augmentation draw once per gene (shared by the gene's conditions in the block),
pairwise once per pair. At inference (no dropout) the two models compute the same function.
"""

from __future__ import annotations

import contextlib

import keras

from deepreg.models import bilinear as deepreg_bilinear
from deepreg.models import layers as deepreg_layers
from deepreg.models.bilinear import CONDITION_INPUT, GENE_INPUT
from deepreg.models.config import HEADLESS_FUSIONS, ModelConfig
from deepreg.models.registry import FUSIONS, SEQUENCE_TOWERS, lookup, register_fusion, register_sequence_tower

SEQUENCE_INPUT, REGULATOR_INPUT = "sequence", "regulators"


def make_regularizer(config: ModelConfig):
    """l1/l2 on all kernels, as the notebook's regularised single-layer model."""
    if config.l1 == 0 and config.l2 == 0:
        return None
    return keras.regularizers.L1L2(l1=config.l1, l2=config.l2)


def _conv_block(x, index: int, filters: int, width: int, pool, stride: int, config: ModelConfig, regularizer):
    """One conv layer with its batch-norm, activation and pool.

    Without batch-norm (and with a non-decreasing activation) the pool is fused into the conv layer,
    which pools before adding the bias and activating (same values, fewer passes). Batch-norm sits
    between the conv and the activation, so the pool then comes after, as a separate layer.
    """
    spec = config.sequence
    mirrored = spec.reverse_complement == "mirrored"
    fused = not spec.batch_norm and spec.activation in deepreg_layers.MONOTONE_ACTIVATIONS
    x = deepreg_layers.SequenceConv(
        filters, width, padding=spec.padding, activation=None if spec.batch_norm else spec.activation,
        use_bias=not spec.batch_norm, mirrored=mirrored, pool=pool if fused else "none", pool_stride=stride or None,
        kernel_regularizer=regularizer, name=f"conv_{index}")(x)
    if spec.batch_norm:
        norm = deepreg_layers.MirroredBatchNormalization if mirrored else keras.layers.BatchNormalization
        x = norm(name=f"batch_norm_{index}")(x)
        x = keras.layers.Activation(spec.activation, name=f"activation_{index}")(x)
    if not fused and pool == "global":
        x = keras.layers.GlobalMaxPooling1D(name=f"global_max_{index}")(x)
    elif not fused and pool != "none":
        x = keras.layers.MaxPooling1D(pool, strides=stride, name=f"max_pool_{index}")(x)
    if spec.dropout:
        x = keras.layers.Dropout(spec.dropout, name=f"conv_dropout_{index}")(x)
    return x


def _recurrent_layer(config: ModelConfig, regularizer) -> keras.layers.Layer:
    kind = keras.layers.LSTM if config.sequence.recurrent == "lstm" else keras.layers.GRU
    return kind(config.sequence.recurrent_units, kernel_regularizer=regularizer, recurrent_regularizer=regularizer,
                name=f"sequence_{config.sequence.recurrent}")


@register_sequence_tower("conv")
def conv_tower(config: ModelConfig, sequence_length: int, regularizer) -> keras.Model:
    """Conv layers (each with its pool), strand merge, then a recurrent layer or a flatten, then dense layers.

    When the fusion reads positions (`concat_rnn`), the tower stops after the conv stack and returns
    per-position features; the recurrent layer is then the fusion.
    """
    spec = config.sequence
    inputs = keras.Input((sequence_length, 4), name="promoter")
    x = inputs
    if spec.reverse_complement == "augment":
        x = deepreg_layers.RandomReverseComplement(name="reverse_complement")(x)
    layers = zip(spec.per_layer("filters"), spec.per_layer("filter_width"), spec.pool_windows())
    for index, (filters, width, (pool, stride)) in enumerate(layers, start=1):
        x = _conv_block(x, index, filters, width, pool, stride, config, regularizer)
    if spec.reverse_complement == "mirrored":
        x = deepreg_layers.MergeStrands(name="merge_strands")(x)
    if config.reads_positions:
        return keras.Model(inputs, x, name="sequence_tower")
    if spec.recurrent != "none":
        x = _recurrent_layer(config, regularizer)(x)
    elif len(x.shape) == 3 and not (spec.kmer and spec.conv_layers == 0):
        x = keras.layers.Flatten(name="flatten")(x)
    if spec.kmer:
        x = _with_kmer_counts(inputs, x if spec.conv_layers else None, spec)
    for index, units in enumerate(spec.dense_units, start=1):
        x = keras.layers.Dense(units, activation=spec.activation, kernel_regularizer=regularizer,
                               name=f"sequence_dense_{index}")(x)
        if spec.dropout:
            x = keras.layers.Dropout(spec.dropout, name=f"sequence_dropout_{index}")(x)
    if spec.feature_norm:
        x = keras.layers.BatchNormalization(momentum=0.9, name="sequence_feature_norm")(x)
    return keras.Model(inputs, x, name="sequence_tower")


def _with_kmer_counts(promoters, features, spec):
    """The promoters' k-mer counts, standardised across genes, beside the conv features (if any)."""
    counts = deepreg_bilinear.GeneKmerCounts(spec.kmer, spec.kmer_proximal, name="kmer_counts")(promoters)
    counts = keras.layers.BatchNormalization(momentum=0.9, name="kmer_norm")(counts)
    if spec.dropout:
        counts = keras.layers.Dropout(spec.dropout, name="kmer_dropout")(counts)
    if features is None:
        return counts
    return keras.layers.Concatenate(name="sequence_features")([features, counts])


def regulator_tower(config: ModelConfig, n_regulators: int, regularizer) -> keras.Model:
    """Dense layers over the regulator vector, or the raw vector itself when there are none."""
    spec = config.regulators
    inputs = keras.Input((n_regulators,), name="regulator_expression")
    x = inputs
    for index, units in enumerate(spec.dense_units, start=1):
        x = keras.layers.Dense(units, activation=spec.activation, kernel_regularizer=regularizer,
                               name=f"regulator_dense_{index}")(x)
        if spec.layer_norm:
            x = keras.layers.LayerNormalization(name=f"regulator_norm_{index}")(x)
        if spec.dropout:
            x = keras.layers.Dropout(spec.dropout, name=f"regulator_dropout_{index}")(x)
    if spec.skip and spec.dense_units:
        x = keras.layers.Concatenate(name="regulator_features")([inputs, x])
    return keras.Model(inputs, x, name="regulator_tower")


@register_fusion("tensor")
def tensor_fusion(config: ModelConfig, regularizer):
    return deepreg_layers.TensorProductDense(config.head.dense_units[0], activation=config.head.activation,
                                             contraction=config.contraction, kernel_regularizer=regularizer,
                                             name="fusion")


@register_fusion("concat")
def concat_fusion(config: ModelConfig, regularizer):
    return deepreg_layers.ConcatDense(config.head.dense_units[0], activation=config.head.activation,
                                      kernel_regularizer=regularizer, name="fusion")


@register_fusion("concat_rnn")
def concat_rnn_fusion(config: ModelConfig, regularizer):
    return deepreg_layers.ConcatRecurrent(config.sequence.recurrent_units, cell=config.sequence.recurrent,
                                          kernel_regularizer=regularizer, name="fusion")


@register_fusion("bilinear")
def bilinear_fusion(config: ModelConfig, regularizer, n_genes: int = 0, n_conditions: int = 0):
    if (config.gene_embedding and not n_genes) or (config.condition_embedding and not n_conditions):
        raise ValueError("model.gene_embedding / model.condition_embedding need the dataset's size "
                         "(build_models(..., n_genes=..., n_conditions=...))")
    return deepreg_bilinear.BilinearFusion(config.rank, n_genes=n_genes if config.gene_embedding else 0,
                                           n_conditions=n_conditions if config.condition_embedding else 0,
                                           interaction=bool(config.head.dense_units),
                                           kernel_regularizer=regularizer, embedding_regularizer=regularizer,
                                           name="fusion")


def expression_profile(config: ModelConfig, regularizer, n_genes: int, n_conditions: int):
    """The gene's own training-pair expression as a tower (`model.profile`); its tables are set by training."""
    spec = config.profile
    return deepreg_bilinear.ExpressionProfile(n_genes, n_conditions, spec.dense_units, activation=spec.activation,
                                              dropout=spec.dropout, mask_rate=spec.mask_rate, folds=spec.folds,
                                              decoder=spec.decoder, kernel_regularizer=regularizer,
                                              name="expression_profile")


def head(config: ModelConfig, regularizer, class_thresholds: tuple[float, float] = (-0.5, 0.5)
         ) -> list[keras.layers.Layer]:
    """Dropout and dense layers after the fusion layer, then the output layer.

    A list of layers rather than a sub-model: the same layers act on the last axis of block outputs
    (G_b x C_b x units) and of pair outputs (pairs x units).
    """
    every_entry = config.fusion in HEADLESS_FUSIONS
    units_after_fusion = config.head.dense_units if every_entry else config.head.dense_units[1:]
    parts: list[keras.layers.Layer] = []
    for index, units in enumerate(units_after_fusion, start=1):
        parts.append(keras.layers.Dropout(config.head.dropout, name=f"dropout_{index}"))
        parts.append(keras.layers.Dense(units, activation=config.head.activation, kernel_regularizer=regularizer,
                                        name=f"dense_{index + 1}"))
    parts.append(keras.layers.Dropout(config.head.dropout, name=f"dropout_{len(units_after_fusion) + 1}"))
    activation = None if config.task == "regression" else "softmax"
    # With a baseline offset training starts from the baseline itself: the network's part of a regression
    # starts at zero, and a 3-class output starts as the thresholds of the classes on the baseline's score.
    initializer, bias_initializer = "glorot_uniform", "zeros"
    if config.offset != "none" and config.task == "regression":
        initializer = "zeros"
    elif config.task == "classification" and (config.offset != "none" or config.profile.enabled):
        initializer, bias_initializer = threshold_initializers(*class_thresholds)
    parts.append(keras.layers.Dense(config.n_outputs, activation=activation, kernel_regularizer=regularizer,
                                    kernel_initializer=initializer, bias_initializer=bias_initializer,
                                    dtype="float32", name="output"))
    return parts


THRESHOLD_SHARPNESS = 4.0  # logits per log2 unit: the first predictions are soft, not one-hot


def threshold_initializers(low: float, high: float):
    """Kernel and bias of a 3-class output on a scalar score s that predicts down for s < low, up for s > high
    and baseline between: logits k * (low - s, 0, s - high), k = THRESHOLD_SHARPNESS."""
    k = THRESHOLD_SHARPNESS
    return keras.initializers.Constant([[-k, 0.0, k]]), keras.initializers.Constant([k * low, 0.0, -k * high])


@contextlib.contextmanager
def _dtype_policy(name: str):
    """Layers built inside take this Keras dtype policy (restored afterwards)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_models(config: ModelConfig, sequence_length: int, n_regulators: int, *, n_genes: int | None = None,
                 n_conditions: int | None = None, class_thresholds: tuple[float, float] = (-0.5, 0.5),
                 ) -> tuple[keras.Model, keras.Model]:
    """The block model and the pair model of one architecture, sharing every weight.

    `n_genes` and `n_conditions` (the dataset's) are needed by models that read gene or condition
    indices: a per-gene or per-condition embedding (`model.gene_embedding`, `model.condition_embedding`)
    or a baseline table (`model.offset`).
    Those models take two more inputs, `gene` and `condition`, the row and column indices of the
    block's genes and conditions (or of each pair) in the dataset.
    `class_thresholds` (the data config's) place the first class boundaries of a 3-class model on a baseline.
    """
    config.validate_for(sequence_length)
    if config.uses_gene_index and not (n_genes and n_conditions):
        raise ValueError("model.gene_embedding / model.condition_embedding / model.offset need "
                         "build_models(..., n_genes=..., n_conditions=...)")
    with _dtype_policy(config.precision):
        return _compose_models(config, sequence_length, n_regulators, n_genes or 0, n_conditions or 0,
                               class_thresholds)


def _compose_models(config: ModelConfig, sequence_length: int, n_regulators: int, n_genes: int,
                    n_conditions: int, class_thresholds: tuple[float, float]) -> tuple[keras.Model, keras.Model]:
    regularizer = make_regularizer(config)
    sequence_tower = lookup(SEQUENCE_TOWERS, "sequence tower", "model.sequence.tower", config.sequence.tower)(
        config, sequence_length, regularizer)
    regulators = regulator_tower(config, n_regulators, regularizer)
    fusion_builder = lookup(FUSIONS, "fusion", "model.fusion", config.fusion)
    fusion = (fusion_builder(config, regularizer, n_genes=n_genes, n_conditions=n_conditions)
              if config.gene_embedding or config.condition_embedding else fusion_builder(config, regularizer))
    top = head(config, regularizer, class_thresholds)
    offset = (deepreg_bilinear.BaselineOffset(n_genes, n_conditions, name="baseline_offset")
              if config.offset != "none" else None)
    profile = expression_profile(config, regularizer, n_genes, n_conditions) if config.profile.enabled else None
    # A 3-class model adds the profile and the baseline to the network's score in log2 units: the score goes
    # through one weight that starts at zero, so training starts from the baseline's classes.
    network_score = (keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", kernel_regularizer=regularizer,
                                        dtype="float32", name="network_score")
                     if config.task == "classification" and (offset is not None or profile is not None) else None)

    def compose(pairwise: bool, name: str) -> keras.Model:
        inputs = {SEQUENCE_INPUT: keras.Input((sequence_length, 4), name=SEQUENCE_INPUT),
                  REGULATOR_INPUT: keras.Input((n_regulators,), name=REGULATOR_INPUT)}
        if config.uses_gene_index:
            inputs[GENE_INPUT] = keras.Input((), dtype="int32", name=GENE_INPUT)
        if config.uses_condition_index:
            inputs[CONDITION_INPUT] = keras.Input((), dtype="int32", name=CONDITION_INPUT)
        regulator_features = regulators(inputs[REGULATOR_INPUT])
        fused = [sequence_tower(inputs[SEQUENCE_INPUT]), regulator_features]
        if config.gene_embedding:
            fused.append(inputs[GENE_INPUT])
        if config.condition_embedding:
            fused.append(inputs[CONDITION_INPUT])
        outputs = fusion(fused, pairwise=pairwise)

        def with_profile_and_offset(score):
            if profile is not None:
                decoded = (inputs[REGULATOR_INPUT] if config.profile.decoder == "regulator_profiles"
                           else regulator_features)
                score = deepreg_layers.AddToScore(dtype="float32", name="with_profile")(
                    [score, profile([decoded, inputs[GENE_INPUT], inputs[CONDITION_INPUT]], pairwise=pairwise)])
            if offset is not None:
                score = offset([score, inputs[GENE_INPUT], inputs[CONDITION_INPUT]], pairwise=pairwise)
            return score

        # A 3-class model reads the whole score (network + profile + baseline) through its output layer;
        # a regression model adds the profile and the baseline to its output.
        if network_score is not None:
            outputs = with_profile_and_offset(network_score(outputs))
        for layer in top:
            outputs = layer(outputs)
        if config.task == "regression":
            outputs = with_profile_and_offset(deepreg_layers.SqueezeLast(dtype="float32", name="prediction")(outputs))
        return keras.Model(inputs, outputs, name=name)

    return compose(False, "deepreg_block"), compose(True, "deepreg_pair")


def build_model(config: ModelConfig, sequence_length: int, n_regulators: int, **sizes) -> keras.Model:
    """The block model alone (what training, tracking and attribution use)."""
    return build_models(config, sequence_length, n_regulators, **sizes)[0]


ENSEMBLE_NAME = "deepreg_ensemble"


def ensemble_model(members: list[keras.Model]) -> keras.Model:
    """One block model whose output is the mean of its members' outputs (`training.ensemble`).

    The members are block models of one architecture trained from different seeds; they keep their
    weights and are renamed `member_0`, `member_1`, ... so that they can sit side by side in one model.
    """
    for index, member in enumerate(members):
        member.name = f"member_{index}"
    inputs = {name: keras.Input(tensor.shape[1:], dtype=tensor.dtype, name=name)
              for name, tensor in members[0].input.items()}
    outputs = keras.layers.Average(dtype="float32", name="ensemble_mean")([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name=ENSEMBLE_NAME)


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The member models of an ensemble (see `ensemble_model`); a single model is its own only member."""
    if model.name != ENSEMBLE_NAME:
        return [model]
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def model_input_names(model: keras.Model) -> tuple[str, ...]:
    """The names of a block or pair model's inputs (`sequence`, `regulators`, maybe `gene`, `condition`)."""
    inputs = model.input
    return tuple(inputs) if isinstance(inputs, dict) else tuple(tensor.name for tensor in model.inputs)
