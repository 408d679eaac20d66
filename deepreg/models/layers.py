"""Custom layers of the architecture space, each computing its function in the cheapest order.

Fusion layers hold exactly the parameters of a layer applied to the fused vector (a `Dense` on the
flattened outer product or on the concatenation; a recurrent layer on the per-position
concatenation). Called with `pairwise=True` on one row per pair they materialise that vector, as the
original network did (the naive reference). Called on a block (sequence features of G_b genes,
regulator features of C_b conditions) they return the G_b x C_b result without materialising
anything per pair: the tensor-product kernel is contracted with one modality first, then with the
other (a bilinear form); the concatenation kernel is split in two, each half applied once per gene
or once per condition.

Sequence layers: `SequenceConv` is a Conv1D that may scan mirrored filter pairs (reverse-complement
equivariance) and fuse its max-pool; `MirroredBatchNormalization`, `MergeStrands` and
`RandomReverseComplement` complete the reverse-complement options.

Every layer serialises itself (`get_config`), so saved models load with `safe_mode` on.
"""

from __future__ import annotations

import keras
from keras import ops

CONTRACTIONS = ("auto", "per_gene", "per_condition")
RECURRENT_CELLS = ("lstm", "gru")
# Non-decreasing activations commute with max: act(max(x) + b) == max(act(x + b)).
MONOTONE_ACTIVATIONS = ("relu", "linear", "sigmoid", "tanh", "elu", "softplus", "exponential", "relu6")
ARGMAX_CHUNK = 16


def serializable(cls):
    return keras.saving.register_keras_serializable(package="deepreg")(cls)


def _flip_strands(x):
    """Reverse complement along positions (axis 1) and channels (last axis).

    One-hot columns are A, C, G, T, so the complement is the reversed channel order; the mirrored
    conv layers keep that convention for their outputs (filter j's mirror is channel 2F - 1 - j).
    """
    return ops.flip(ops.flip(x, axis=1), axis=-1)


# ----------------------------------------------------------------------------------------------
# sequence tower


@serializable
class SequenceConv(keras.layers.Layer):
    """Conv1D (stride 1) over promoter positions, optionally with mirrored filters and a fused max-pool.

    `mirrored`: each of the `filters` kernels W is also scanned as its reverse complement
    W[::-1, ::-1]; the output has 2 x filters channels ordered [W_1..W_F, rc(W_F)..rc(W_1)], so the
    reverse complement of the input gives the reverse complement of the output (equivariance).

    `pool`: `none`, `global` or a max-pool factor (with `pool_stride`). The pool is applied before the
    bias and the (non-decreasing) activation, which gives the same values with fewer passes over the
    G x positions x filters activations. A global max is computed as the conv at each filter's best
    window (found on the full conv without gradient), so its gradient is a gather of one window per
    filter instead of a backward conv over every position. That is the gradient of a max layer
    (when a filter's best score is tied between windows, all of it goes to the first one).
    """

    def __init__(self, filters: int, kernel_size: int, padding: str = "valid", activation=None,
                 use_bias: bool = True, mirrored: bool = False, pool="none", pool_stride: int | None = None,
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        self.filters, self.kernel_size, self.padding = int(filters), int(kernel_size), padding
        self.activation = keras.activations.get(activation)
        self.use_bias, self.mirrored = bool(use_bias), bool(mirrored)
        self.pool = pool if pool in ("none", "global") else int(pool)
        self.pool_stride = int(pool_stride or (self.pool if isinstance(self.pool, int) else 1))
        if self.pool != "none" and self.activation.__name__ not in MONOTONE_ACTIVATIONS:
            raise ValueError(f"a fused pool needs a non-decreasing activation, got {self.activation.__name__!r}")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    @property
    def channels_out(self) -> int:
        return 2 * self.filters if self.mirrored else self.filters

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, int(input_shape[-1]), self.filters),
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
                     if self.use_bias else None)

    def full_kernel(self):
        """The width x channels x channels_out kernel actually scanned (mirrors appended)."""
        if not self.mirrored:
            return self.kernel
        mirror = ops.flip(ops.flip(self.kernel, axis=0), axis=1)
        return ops.concatenate([self.kernel, ops.flip(mirror, axis=2)], axis=-1)

    def full_bias(self):
        if not self.mirrored:
            return self.bias
        return ops.concatenate([self.bias, ops.flip(self.bias, axis=0)], axis=0)

    def call(self, inputs):
        inputs = self._pad(inputs)
        kernel = self.full_kernel()
        if self.pool == "global":
            outputs = self._global_max(inputs, kernel)
        else:
            outputs = ops.conv(inputs, kernel, strides=1, padding="valid")
            if self.pool != "none":
                outputs = ops.max_pool(outputs, self.pool, strides=self.pool_stride, padding="valid")
        if self.use_bias:
            outputs = outputs + self.full_bias()
        return self.activation(outputs)

    def _pad(self, inputs):
        if self.padding == "valid" or self.kernel_size == 1:
            return inputs
        left = (self.kernel_size - 1) // 2
        return ops.pad(inputs, [[0, 0], [left, self.kernel_size - 1 - left], [0, 0]])

    def _global_max(self, inputs, kernel):
        best = self._best_windows(ops.stop_gradient(inputs), ops.stop_gradient(kernel))  # batch x filters
        length, channels = ops.shape(inputs)[1], int(inputs.shape[-1])
        window = ops.expand_dims(best, -1) + ops.arange(self.kernel_size, dtype="int32")
        offsets = ops.arange(ops.shape(inputs)[0], dtype="int32") * length
        rows = window + ops.reshape(offsets, (-1, 1, 1))                          # batch x filters x width
        patches = ops.take(ops.reshape(inputs, (-1, channels)), rows, axis=0)    # ... x width x channels
        return ops.einsum("bfwc,wcf->bf", patches, kernel)

    def _best_windows(self, inputs, kernel):
        """Start of each filter's highest-scoring window, `ARGMAX_CHUNK` promoters at a time.

        The full conv output (promoters x positions x filters, 1 MB per promoter at 982 x 256) only
        serves to find the argmax; computing it by chunks keeps it from setting the memory peak.
        """
        def best(chunk):
            return ops.cast(ops.argmax(ops.conv(chunk, kernel, strides=1, padding="valid"), axis=1), "int32")

        count = ops.shape(inputs)[0]
        if isinstance(count, int) and count <= ARGMAX_CHUNK:
            return best(inputs)
        length, channels = int(inputs.shape[1]), int(inputs.shape[2])
        padded = ops.pad(inputs, [[0, (ARGMAX_CHUNK - count % ARGMAX_CHUNK) % ARGMAX_CHUNK], [0, 0], [0, 0]])
        chunks = ops.map(best, ops.reshape(padded, (-1, ARGMAX_CHUNK, length, channels)))
        return ops.reshape(chunks, (-1, self.channels_out))[:count]

    def compute_output_shape(self, input_shape):
        batch, length = input_shape[0], input_shape[1]
        if self.pool == "global":
            return (batch, self.channels_out)
        if length is not None:
            length = length - self.kernel_size + 1 if self.padding == "valid" else length
            if self.pool != "none":
                length = (length - self.pool) // self.pool_stride + 1
        return (batch, length, self.channels_out)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "padding": self.padding,
            "activation": keras.activations.serialize(self.activation), "use_bias": self.use_bias,
            "mirrored": self.mirrored, "pool": self.pool, "pool_stride": self.pool_stride,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config


@serializable
class MirroredBatchNormalization(keras.layers.Layer):
    """Batch normalisation that treats a filter and its mirror as one feature.

    The two strands' activations are stacked along positions and normalised with one set of
    statistics and parameters per filter pair, which keeps a mirrored conv stack equivariant.
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.momentum, self.epsilon = momentum, epsilon
        self.shared = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name="shared")

    def build(self, input_shape):
        self.shared.build((None, None, int(input_shape[-1]) // 2))

    def call(self, inputs, training=None):
        half, positions = int(inputs.shape[-1]) // 2, ops.shape(inputs)[1]
        stacked = ops.concatenate([inputs[..., :half], ops.flip(inputs[..., half:], axis=-1)], axis=1)
        normed = self.shared(stacked, training=training)
        return ops.concatenate([normed[:, :positions], ops.flip(normed[:, positions:], axis=-1)], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


@serializable
class MergeStrands(keras.layers.Layer):
    """Max of each filter and its mirror (the motif scanned on either strand): 2F channels -> F."""

    def call(self, inputs):
        half = int(inputs.shape[-1]) // 2
        return ops.maximum(inputs[..., :half], ops.flip(inputs[..., half:], axis=-1))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], int(input_shape[-1]) // 2)


@serializable
class RandomReverseComplement(keras.layers.Layer):
    """Data augmentation: while training, each promoter is reverse-complemented with probability `rate`."""

    def __init__(self, rate: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = float(rate), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        draw = keras.random.uniform((ops.shape(inputs)[0], 1, 1), seed=self.seed_generator)
        return ops.where(draw < self.rate, _flip_strands(inputs), inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


# ----------------------------------------------------------------------------------------------
# fusions


class _FusedDense(keras.layers.Layer):
    """Common parameters and config of the dense fusion layers."""

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


@serializable
class TensorProductDense(_FusedDense):
    """Dense layer on the outer product s (x) t, flattened row-major (index f * R + r).

    Block contraction order: `per_gene` contracts the kernel with the sequence features of each
    gene (G_b F R U + G_b C_b R U multiply-adds), `per_condition` with the regulator features of each
    condition (C_b R F U + G_b C_b F U); `auto` picks the cheaper one from the block's shape (at run
    time when the shape is only known then). Both are plain matrix products over the stored kernel,
    without transposing it.
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
        n_genes, n_conditions = ops.shape(sequence)[0], ops.shape(regulators)[0]
        if self.contraction != "auto":
            hidden = self._contract(self.contraction, sequence, regulators)
        elif isinstance(n_genes, int) and isinstance(n_conditions, int):
            hidden = self._contract(self.cheaper(n_genes, n_conditions), sequence, regulators)
        else:
            hidden = ops.cond(self._per_gene_is_cheaper(n_genes, n_conditions),
                              lambda: self._contract("per_gene", sequence, regulators),
                              lambda: self._contract("per_condition", sequence, regulators))
        return self.activation(hidden + self.bias)

    def _contract(self, order: str, sequence, regulators):
        width_f, width_r, units = self.sequence_width, self.regulator_width, self.units
        n_conditions = ops.shape(regulators)[0]
        if order == "per_gene":
            per_gene = ops.matmul(sequence, ops.reshape(self.kernel, (width_f, width_r * units)))
            per_gene = ops.reshape(per_gene, (-1, width_r, units))                 # G x R x U
            return ops.matmul(ops.expand_dims(regulators, 0), per_gene)            # G x C x U
        kernel = ops.reshape(self.kernel, (width_f, width_r, units))
        per_condition = ops.matmul(ops.expand_dims(regulators, 0), kernel)         # F x C x U
        hidden = ops.matmul(sequence, ops.reshape(per_condition, (width_f, -1)))   # G x (C U)
        return ops.reshape(hidden, (-1, n_conditions, units))

    def _costs(self, n_genes, n_conditions):
        width_f, width_r = self.sequence_width, self.regulator_width
        per_gene = n_genes * width_f * width_r + n_genes * n_conditions * width_r
        per_condition = n_conditions * width_r * width_f + n_genes * n_conditions * width_f
        return per_gene, per_condition

    def cheaper(self, n_genes: int, n_conditions: int) -> str:
        """The contraction order with fewer multiply-adds for a G_b x C_b block."""
        per_gene, per_condition = self._costs(n_genes, n_conditions)
        return "per_gene" if per_gene <= per_condition else "per_condition"

    def _per_gene_is_cheaper(self, n_genes, n_conditions):
        per_gene, per_condition = self._costs(ops.cast(n_genes, "float32"), ops.cast(n_conditions, "float32"))
        return per_gene <= per_condition

    def get_config(self):
        return {**super().get_config(), "contraction": self.contraction}


@serializable
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
        from_regulators = ops.matmul(regulators, self.kernel[self.sequence_width:]) + self.bias
        hidden = ops.expand_dims(from_sequence, 1) + ops.expand_dims(from_regulators, 0)
        return self.activation(hidden)


class _LSTMStep(keras.layers.Layer):
    """One LSTM step on inputs already projected to the 4 gates (Keras gate order i, f, c, o)."""

    def __init__(self, units: int, recurrent_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]
        self.recurrent_regularizer = recurrent_regularizer

    def build(self, input_shape):
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=(self.units, 4 * self.units),
                                                initializer="orthogonal", regularizer=self.recurrent_regularizer)

    def call(self, gates, states):
        hidden, cell = states
        gates = gates + ops.matmul(hidden, self.recurrent_kernel)
        write, forget, candidate, read = ops.split(gates, 4, axis=-1)
        cell = ops.sigmoid(forget) * cell + ops.sigmoid(write) * ops.tanh(candidate)
        hidden = ops.sigmoid(read) * ops.tanh(cell)
        return hidden, [hidden, cell]


class _GRUStep(keras.layers.Layer):
    """One GRU step (reset gate after the recurrent product, as Keras' default) on projected inputs."""

    def __init__(self, units: int, recurrent_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.recurrent_regularizer = recurrent_regularizer

    def build(self, input_shape):
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=(self.units, 3 * self.units),
                                                initializer="orthogonal", regularizer=self.recurrent_regularizer)
        self.recurrent_bias = self.add_weight(name="recurrent_bias", shape=(3 * self.units,), initializer="zeros")

    def call(self, gates, states):
        hidden = states[0] if isinstance(states, (list, tuple)) else states
        from_input = ops.split(gates, 3, axis=-1)
        from_state = ops.split(ops.matmul(hidden, self.recurrent_kernel) + self.recurrent_bias, 3, axis=-1)
        update = ops.sigmoid(from_input[0] + from_state[0])
        reset = ops.sigmoid(from_input[1] + from_state[1])
        candidate = ops.tanh(from_input[2] + reset * from_state[2])
        hidden = update * hidden + (1.0 - update) * candidate
        return hidden, [hidden]


@serializable
class ConcatRecurrent(keras.layers.Layer):
    """Recurrent layer (LSTM or GRU) over positions, reading [sequence features at p, regulator features].

    The input kernel (F + R) x gates splits into a sequence part and a regulator part. Pairwise, the
    per-position concatenation is materialised and projected (the notebook's concat-RNN). On a block,
    each gene's positions are projected once and each condition's regulators once, and the two are
    broadcast-added into the gate inputs of every pair; the recurrence itself is inherently per pair
    (its state depends on both), so it runs over G_b x C_b sequences either way.
    """

    def __init__(self, units: int, cell: str = "lstm", kernel_initializer="glorot_uniform", kernel_regularizer=None,
                 **kwargs):
        super().__init__(**kwargs)
        if cell not in RECURRENT_CELLS:
            raise ValueError(f"cell must be one of {RECURRENT_CELLS}, got {cell!r}")
        self.units, self.cell = int(units), cell
        self.gates = (4 if cell == "lstm" else 3) * self.units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        step = (_LSTMStep if cell == "lstm" else _GRUStep)(self.units, self.kernel_regularizer, name=f"{cell}_step")
        self.recurrence = keras.layers.RNN(step, name="recurrence")

    def build(self, input_shape):
        sequence_shape, regulator_shape = input_shape
        self.sequence_width = int(sequence_shape[-1])
        self.regulator_width = int(regulator_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(self.sequence_width + self.regulator_width, self.gates),
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = self.add_weight(name="bias", shape=(self.gates,), initializer="zeros")
        if self.cell == "lstm":
            forget = ops.concatenate([ops.zeros((self.units,)), ops.ones((self.units,)), ops.zeros((2 * self.units,))])
            self.bias.assign(forget)
        self.recurrence.build((None, sequence_shape[1], self.gates))

    def call(self, inputs, pairwise: bool = False):
        sequence, regulators = inputs
        positions = ops.shape(sequence)[1]
        if pairwise:
            tiled = ops.broadcast_to(ops.expand_dims(regulators, 1),
                                     (ops.shape(sequence)[0], positions, self.regulator_width))
            fused = ops.concatenate([sequence, tiled], axis=-1)
            return self.recurrence(ops.matmul(fused, self.kernel) + self.bias)
        from_sequence = ops.matmul(sequence, self.kernel[: self.sequence_width])                 # G x P x gates
        from_regulators = ops.matmul(regulators, self.kernel[self.sequence_width:]) + self.bias  # C x gates
        gates = ops.expand_dims(from_sequence, 1) + ops.expand_dims(ops.expand_dims(from_regulators, 0), 2)
        n_conditions = ops.shape(regulators)[0]
        hidden = self.recurrence(ops.reshape(gates, (-1, positions, self.gates)))
        return ops.reshape(hidden, (-1, n_conditions, self.units))

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units, "cell": self.cell,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config


@serializable
class AddToScore(keras.layers.Layer):
    """Add a per-pair term (G_b x C_b, or one per pair) to a score that may carry a trailing unit axis.

    The 3-class bilinear model keeps its score as G_b x C_b x 1 for the output layer to read; the
    expression-profile term has no such axis.
    """

    def call(self, inputs):
        score, term = inputs
        if len(score.shape) == len(term.shape) + 1:
            term = ops.expand_dims(term, -1)
        return score + term

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@serializable
class SqueezeLast(keras.layers.Layer):
    """Drop the trailing unit axis of a regression output (G_b x C_b x 1 -> G_b x C_b)."""

    def call(self, outputs):
        return ops.squeeze(outputs, axis=-1)
