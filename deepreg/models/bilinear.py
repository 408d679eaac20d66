"""The bilinear (two-tower) fusion and the layers that only it uses.

The sequence tower gives each gene a feature vector s_g, the regulator tower each condition a
vector t_c. Both are projected to a rank-d space, u_g = s_g P (+ a per-gene embedding E_g when
`model.gene_embedding` is on) and v_c = t_c Q (+ a per-condition embedding F_c when
`model.condition_embedding` is on), and the prediction is

    y(g, c) = (u_g . v_c) / sqrt(d) + s_g p (+ e_g) + t_c q (+ f_c)  (+ a small head on u_g * v_c)

With both embeddings the model contains a rank-d factorisation of the genes x conditions matrix (what
the low-rank completion baseline fits), with the towers' features beside it.

then the output layer. A block of G_b genes x C_b conditions is one G_b x d by d x C_b matrix
product: the per-pair cost is O(d), against O(F R U) for the tensor product. The naive per-pair form
(`pairwise=True`) computes the same function one pair at a time and stays the reference.

`GeneKmerCounts` counts every k-mer of a promoter (reverse complements merged) inside the model, so a
k-mer tower reads the same one-hot input as the convolutional one. `BaselineOffset` adds a fixed
genes x conditions table (a network-free baseline fitted on the training pairs) to the prediction,
so that the network learns the residual of that baseline.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from deepreg.models.layers import serializable

GENE_INPUT, CONDITION_INPUT = "gene", "condition"


@serializable
class BilinearFusion(keras.layers.Layer):
    """Low-rank bilinear form of gene and condition features, with gene- and condition-side offsets.

    Inputs: `[sequence_features, regulator_features]`, plus the gene indices when `n_genes > 0`
    (a per-gene embedding of width `rank` and a per-gene offset, both starting at zero) and the
    condition indices when `n_conditions > 0` (the same per condition). Output: the
    score (last axis 1), or the score and the `rank` interaction features u * v / sqrt(rank) when
    `interaction` is on (last axis 1 + rank), for the head to read.
    """

    def __init__(self, rank: int, n_genes: int = 0, interaction: bool = False, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, embedding_regularizer=None, n_conditions: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.rank = int(rank)
        self.n_genes = int(n_genes)
        self.n_conditions = int(n_conditions)
        self.interaction = bool(interaction)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.embedding_regularizer = keras.regularizers.get(embedding_regularizer)
        self.scale = 1.0 / math.sqrt(self.rank)

    def build(self, input_shape):
        sequence_width, regulator_width = int(input_shape[0][-1]), int(input_shape[1][-1])
        self.sequence_width, self.regulator_width = sequence_width, regulator_width

        def kernel(name, shape):
            return self.add_weight(name=name, shape=shape, initializer=self.kernel_initializer,
                                   regularizer=self.kernel_regularizer)

        self.gene_kernel = kernel("gene_kernel", (sequence_width, self.rank))
        self.condition_kernel = kernel("condition_kernel", (regulator_width, self.rank))
        # The offsets start at zero: a Glorot init of a width-1 kernel over hundreds of raw regulator
        # values gives the first predictions a variance of several log2 units.
        self.gene_offset_kernel = self.add_weight(name="gene_offset_kernel", shape=(sequence_width, 1),
                                                  initializer="zeros", regularizer=self.kernel_regularizer)
        self.condition_offset_kernel = self.add_weight(name="condition_offset_kernel", shape=(regulator_width, 1),
                                                       initializer="zeros", regularizer=self.kernel_regularizer)
        if self.n_genes:
            self.embedding = self.add_weight(name="gene_embedding", shape=(self.n_genes, self.rank),
                                             initializer="zeros", regularizer=self.embedding_regularizer)
            self.embedding_offset = self.add_weight(name="gene_embedding_offset", shape=(self.n_genes, 1),
                                                    initializer="zeros", regularizer=self.embedding_regularizer)
        if self.n_conditions:
            self.condition_embedding = self.add_weight(
                name="condition_embedding", shape=(self.n_conditions, self.rank), initializer="zeros",
                regularizer=self.embedding_regularizer)
            self.condition_embedding_offset = self.add_weight(
                name="condition_embedding_offset", shape=(self.n_conditions, 1), initializer="zeros",
                regularizer=self.embedding_regularizer)

    def gene_vectors(self, sequence, genes=None):
        """u_g (genes x rank) and the gene-side offset (genes x 1)."""
        vectors = ops.matmul(sequence, self.gene_kernel)
        offsets = ops.matmul(sequence, self.gene_offset_kernel)
        if self.n_genes:
            genes = ops.cast(genes, "int32")
            vectors = vectors + ops.take(self.embedding, genes, axis=0)
            offsets = offsets + ops.take(self.embedding_offset, genes, axis=0)
        return vectors, offsets

    def condition_vectors(self, regulators, conditions=None):
        """v_c (conditions x rank) and the condition-side offset (conditions x 1)."""
        vectors = ops.matmul(regulators, self.condition_kernel)
        offsets = ops.matmul(regulators, self.condition_offset_kernel)
        if self.n_conditions:
            conditions = ops.cast(conditions, "int32")
            vectors = vectors + ops.take(self.condition_embedding, conditions, axis=0)
            offsets = offsets + ops.take(self.condition_embedding_offset, conditions, axis=0)
        return vectors, offsets

    def call(self, inputs, pairwise: bool = False):
        sequence, regulators = inputs[0], inputs[1]
        genes = inputs[2] if self.n_genes else None
        conditions = inputs[2 + bool(self.n_genes)] if self.n_conditions else None
        u, gene_offset = self.gene_vectors(sequence, genes)
        v, condition_offset = self.condition_vectors(regulators, conditions)
        if pairwise:
            product = u * v * self.scale
            score = ops.sum(product, axis=-1, keepdims=True) + gene_offset + condition_offset
        else:
            score = ops.expand_dims(ops.matmul(u, ops.transpose(v)) * self.scale, -1)
            score = score + ops.expand_dims(gene_offset, 1) + ops.expand_dims(condition_offset, 0)
            product = ops.expand_dims(u, 1) * ops.expand_dims(v, 0) * self.scale if self.interaction else None
        if not self.interaction:
            return score
        return ops.concatenate([score, product], axis=-1)

    def attribution_weights(self) -> dict[str, np.ndarray]:
        """The weights as float32 arrays, for attribution (`deepreg.attribution._network`).

        gene_kernel P (F x rank), gene_offset p (F), condition_kernel Q (R x rank), condition_offset q
        (R) and, with a per-gene embedding, embedding E (genes x rank) and embedding_offset e (genes);
        with a per-condition embedding, condition_embedding F (conditions x rank) and
        condition_embedding_offset f (conditions).
        """
        def array(weight, vector=False):
            values = np.asarray(keras.ops.convert_to_numpy(weight), np.float32)
            return values[:, 0] if vector else values

        weights = {"gene_kernel": array(self.gene_kernel), "gene_offset": array(self.gene_offset_kernel, True),
                   "condition_kernel": array(self.condition_kernel),
                   "condition_offset": array(self.condition_offset_kernel, True)}
        if self.n_genes:
            weights.update(embedding=array(self.embedding), embedding_offset=array(self.embedding_offset, True))
        if self.n_conditions:
            weights.update(condition_embedding=array(self.condition_embedding),
                           condition_embedding_offset=array(self.condition_embedding_offset, True))
        return weights

    def get_config(self):
        config = super().get_config()
        config.update({
            "rank": self.rank, "n_genes": self.n_genes, "n_conditions": self.n_conditions,
            "interaction": self.interaction,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "embedding_regularizer": keras.regularizers.serialize(self.embedding_regularizer),
        })
        return config


@serializable
class GeneKmerCounts(keras.layers.Layer):
    """Counts of each canonical k-mer (a k-mer and its reverse complement together) in each promoter.

    Same features as the 6-mer ridge baseline (`deepreg.baselines.kmer_counts`): windows that
    touch an unknown position (an all-zero or background row, i.e. no base with weight 1) are not
    counted. `proximal` adds, for each length w given, the counts in the w bases next to the ORF
    start (the promoter's 3' end): position-aware features, since TSS-proximal sites act more.
    Output genes x K x (1 + len(proximal)) (K = 2080 for k = 6), whole promoter first. Counts are
    piecewise constant in the input: they carry no gradient to the promoter.
    """

    def __init__(self, k: int = 6, proximal: tuple[int, ...] = (), **kwargs):
        super().__init__(**kwargs)
        from deepreg.baselines.kmers import canonical_kmer_columns

        self.k = int(k)
        self.proximal = tuple(int(w) for w in proximal)
        canonical, column_of = canonical_kmer_columns(self.k)
        self.n_kmers = int(canonical.size)
        self.column_of = column_of.astype(np.int32)
        self.powers = (4 ** np.arange(self.k - 1, -1, -1)).astype(np.int32)

    def call(self, promoters):
        promoters = ops.cast(promoters, "float32")
        known = ops.cast(ops.max(promoters, axis=-1) > 0.99, "float32")
        bases = ops.cast(ops.argmax(promoters, axis=-1), "int32")
        length = promoters.shape[1]
        windows = length - self.k + 1
        codes = ops.zeros_like(bases[:, :windows])
        window_known = ops.ones_like(known[:, :windows])
        for offset in range(self.k):
            codes = codes + bases[:, offset:offset + windows] * int(self.powers[offset])
            window_known = window_known * known[:, offset:offset + windows]
        columns = ops.take(ops.convert_to_tensor(self.column_of), codes)
        n_genes = ops.shape(promoters)[0]
        segments = ops.reshape(ops.expand_dims(ops.arange(n_genes, dtype="int32"), 1) * self.n_kmers + columns, (-1,))
        starts = np.arange(windows)
        counts = []
        for width in (length, *self.proximal):
            inside = ops.convert_to_tensor((starts >= length - width).astype(np.float32))
            weights = ops.reshape(window_known * ops.expand_dims(inside, 0), (-1,))
            counted = ops.segment_sum(weights, segments, num_segments=n_genes * self.n_kmers)
            counts.append(ops.reshape(counted, (-1, self.n_kmers)))
        return counts[0] if len(counts) == 1 else ops.concatenate(counts, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_kmers * (1 + len(self.proximal)))

    def get_config(self):
        return {**super().get_config(), "k": self.k, "proximal": list(self.proximal)}


@serializable
class BaselineOffset(keras.layers.Layer):
    """Adds a fixed genes x conditions table to the prediction (not trained).

    The table holds a network-free baseline's predictions for every pair of the dataset, fitted on the
    training pairs only (`deepreg.training.offsets`); the network before it learns the residual.
    Inputs: `[predictions, genes, conditions]`, predictions G_b x C_b (block) or one per pair, or
    the same with a trailing unit axis (the bilinear score that a 3-class output layer reads).
    """

    def __init__(self, n_genes: int, n_conditions: int, **kwargs):
        super().__init__(**kwargs)
        self.n_genes, self.n_conditions = int(n_genes), int(n_conditions)

    def build(self, input_shape):
        self.table = self.add_weight(name="table", shape=(self.n_genes, self.n_conditions), initializer="zeros",
                                     trainable=False)

    def call(self, inputs, pairwise: bool = False):
        predictions, genes, conditions = inputs
        genes, conditions = ops.cast(genes, "int32"), ops.cast(conditions, "int32")
        if pairwise:
            offsets = ops.take(ops.reshape(self.table, (-1,)), genes * self.n_conditions + conditions)
        else:
            offsets = ops.take(ops.take(self.table, genes, axis=0), conditions, axis=1)
        if len(predictions.shape) == len(offsets.shape) + 1:  # a score with a unit axis, read by a 3-class output
            offsets = ops.expand_dims(offsets, -1)
        return predictions + offsets

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "n_genes": self.n_genes, "n_conditions": self.n_conditions}


@serializable
class ExpressionProfile(keras.layers.Layer):
    """A term h_g . w_c + b_c read from the gene's own training-pair expression (`model.profile`).

    The layer keeps two frozen genes x conditions tables, set by training from the training pairs:
    `values` (the training log ratios, 0 elsewhere) and `fold` (the group 0..folds-1 of each training
    pair, -1 for every other pair). The gene's profile for a pair of group k is its row with the
    entries of group k hidden, so no training pair is predicted from its own value; a pair of group -1
    (validation, test, unmeasured) reads every training entry. The masked row and its mask go through
    dense layers to h_g; w_c, b_c are learned per condition (`decoder="conditions"`), read from the
    regulator tower's features of the condition (`"regulators"`), or folded in from the regulators'
    own profiles (`"regulator_profiles"`): z_c = sum_r x_rc h_r / R over the regulators' encoded
    training rows (every training entry, a third frozen table `regulator_rows` names their rows), then
    w_c = z_c M, b_c = z_c . m. The last reads a held-out condition as a column whose regulator
    entries are observed: a gene answers to regulator r as much as its profile resembles r's, which
    shares what the training conditions teach about r across every gene rather than fitting each
    gene's regulator weights on its own. The decoder starts at zero, so the term starts at zero.

    Inputs: `[regulator_features, genes, conditions]` (a block: C_b x R, G_b, C_b; pairs: P x R, P, P);
    for `"regulator_profiles"` the first is the raw regulator expression, not the tower's features.
    Output: G_b x C_b (a block) or P (pairs).
    """

    def __init__(self, n_genes: int, n_conditions: int, dense_units, activation: str = "gelu",
                 dropout: float = 0.0, mask_rate: float = 0.0, folds: int = 5, decoder: str = "conditions",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.n_genes, self.n_conditions = int(n_genes), int(n_conditions)
        self.dense_units = tuple(int(units) for units in dense_units)
        self.activation, self.dropout_rate, self.mask_rate = activation, float(dropout), float(mask_rate)
        self.folds, self.decoder = int(folds), decoder
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.hidden = [keras.layers.Dense(units, activation=activation, kernel_regularizer=self.kernel_regularizer,
                                          name=f"profile_dense_{index}")
                       for index, units in enumerate(self.dense_units, start=1)]
        self.dropouts = [keras.layers.Dropout(self.dropout_rate) for _ in self.dense_units]
        self.seed_generator = keras.random.SeedGenerator(0)

    def build(self, input_shape):
        self.values = self.add_weight(name="values", shape=(self.n_genes, self.n_conditions), initializer="zeros",
                                      trainable=False)
        self.fold = self.add_weight(name="fold", shape=(self.n_genes, self.n_conditions),
                                    initializer=keras.initializers.Constant(-1.0), trainable=False)
        width = 2 * self.n_conditions
        for layer in self.hidden:
            layer.build((None, width))
            width = layer.units
        if self.decoder == "conditions":
            self.decoder_vectors = self.add_weight(name="decoder_vectors", shape=(self.n_conditions, width),
                                                   initializer="zeros", regularizer=self.kernel_regularizer)
            self.decoder_bias = self.add_weight(name="decoder_bias", shape=(self.n_conditions,), initializer="zeros")
        elif self.decoder == "regulator_profiles":
            n_regulators = int(input_shape[0][-1])
            self.regulator_rows = self.add_weight(name="regulator_rows", shape=(n_regulators,),
                                                  initializer=keras.initializers.Constant(-1.0), trainable=False)
            self.decoder_kernel = self.add_weight(name="decoder_kernel", shape=(width, width), initializer="zeros",
                                                  regularizer=self.kernel_regularizer)
            self.decoder_bias_kernel = self.add_weight(name="decoder_bias_kernel", shape=(width, 1),
                                                       initializer="zeros", regularizer=self.kernel_regularizer)
        else:
            regulator_width = int(input_shape[0][-1])
            self.decoder_kernel = self.add_weight(name="decoder_kernel", shape=(regulator_width, width),
                                                  initializer="zeros", regularizer=self.kernel_regularizer)
            self.decoder_bias_kernel = self.add_weight(name="decoder_bias_kernel", shape=(regulator_width, 1),
                                                       initializer="zeros", regularizer=self.kernel_regularizer)

    def set_tables(self, values: np.ndarray, fold: np.ndarray, regulator_rows: np.ndarray | None = None) -> None:
        """Store the training values (G x C, 0 where not a training pair), each pair's group (-1: none) and,
        for `decoder="regulator_profiles"`, each regulator's row in them (-1: the regulator is not a gene)."""
        self.values.assign(np.asarray(values, np.float32))
        self.fold.assign(np.asarray(fold, np.float32))
        if self.decoder == "regulator_profiles":
            if regulator_rows is None:
                raise ValueError("model.profile.decoder = regulator_profiles needs the regulators' rows (regulator_rows)")
            self.regulator_rows.assign(np.asarray(regulator_rows, np.float32))

    def _encode(self, rows, folds, hidden_groups, training):
        """h for each row of profiles (… x C) with the entries of `hidden_groups` (…, broadcast) hidden."""
        mask = ops.cast(ops.logical_and(folds >= 0, ops.not_equal(folds, hidden_groups)), rows.dtype)
        if training and self.mask_rate > 0:
            mask = mask * ops.cast(keras.random.uniform(ops.shape(mask), seed=self.seed_generator) >= self.mask_rate,
                                   mask.dtype)
        features = ops.concatenate([rows * mask, mask], axis=-1)
        for layer, dropout in zip(self.hidden, self.dropouts):
            features = dropout(layer(features), training=training)
        return features

    def _decoder(self, regulators, conditions, training=None):
        if self.decoder == "conditions":
            return ops.take(self.decoder_vectors, conditions, axis=0), ops.take(self.decoder_bias, conditions, axis=0)
        if self.decoder == "regulator_profiles":
            folded = ops.matmul(regulators, self._regulator_encodings(training))
            return ops.matmul(folded, self.decoder_kernel), ops.matmul(folded, self.decoder_bias_kernel)[..., 0]
        return ops.matmul(regulators, self.decoder_kernel), ops.matmul(regulators, self.decoder_bias_kernel)[..., 0]

    def _regulator_encodings(self, training):
        """R x h: each regulator's encoded row of training values (all of them), zero for a regulator that is
        not a gene of the matrix, divided by R so that z_c is a mean over regulators."""
        rows = ops.cast(self.regulator_rows, "int32")
        present = ops.cast(rows >= 0, self.values.dtype)
        rows = ops.maximum(rows, 0)
        encoded = self._encode(ops.take(self.values, rows, axis=0), ops.take(self.fold, rows, axis=0), -1, training)
        return encoded * ops.expand_dims(present, -1) / float(self.regulator_rows.shape[0])

    def call(self, inputs, pairwise: bool = False, training=None):
        regulators, genes, conditions = inputs
        genes, conditions = ops.cast(genes, "int32"), ops.cast(conditions, "int32")
        rows, folds = ops.take(self.values, genes, axis=0), ops.take(self.fold, genes, axis=0)
        vectors, bias = self._decoder(regulators, conditions, training)
        if pairwise:
            own = ops.take(ops.reshape(self.fold, (-1,)), genes * self.n_conditions + conditions)
            hidden = self._encode(rows, folds, ops.expand_dims(own, -1), training)
            return ops.sum(hidden * vectors, axis=-1) + bias
        groups = ops.reshape(ops.arange(-1, self.folds, dtype=folds.dtype), (1, -1, 1))
        hidden = self._encode(ops.expand_dims(rows, 1), ops.expand_dims(folds, 1), groups, training)
        scores = ops.einsum("gkh,ch->gkc", hidden, vectors)
        own = ops.cast(ops.take(folds, conditions, axis=1), "int32") + 1
        chosen = ops.take_along_axis(scores, ops.expand_dims(own, 1), axis=1)[:, 0, :]
        return chosen + ops.expand_dims(bias, 0)

    def get_config(self):
        return {**super().get_config(), "n_genes": self.n_genes, "n_conditions": self.n_conditions,
                "dense_units": list(self.dense_units), "activation": self.activation, "dropout": self.dropout_rate,
                "mask_rate": self.mask_rate, "folds": self.folds, "decoder": self.decoder,
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}
