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
