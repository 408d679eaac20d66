"""DeepLIFT (rescale rule) for DeepREG models, native and batched, exploiting the factored structure.

DeepLIFT explains the difference f(x) - f(x0) between the output at an input and at a reference as a
sum of contributions of the input features: contribution = multiplier x (x - x0). Multipliers are
propagated backwards like gradients except through nonlinearities, where the rescale rule uses
Delta y / Delta x (Shrikumar et al. 2017). Linear layers pass multipliers through their transpose;
max pools route them to the maximum of the actual input (the deeplift package's "gradient" mode).
This implementation follows the authors' `deeplift` package step for step and agrees with it to
1e-4 (`tests/test_attribution_deeplift.py` runs the package as the reference, in its own process).

One modality at a time. A DeepREG output f(s, t) has a promoter s and a regulator vector t. We
attribute one of them with the other fixed at its actual value:

- regulator scores: f(s_g, t_c) - f(s_g, t0) for a regulator reference t0 (zero expression, "no
  change", by default; or the mean over conditions), one score per (gene, condition, regulator);
- sequence scores: f(s_g, t_c) - f(s0, t_c) for promoter references s0 (dinucleotide shuffles of s_g,
  the "genomics default"), one score per (gene, condition, position, base).

With the sequence fixed, everything up to the fusion's ReLU is linear in the regulator features
(tensor product: h = sum_{f,r} s_f t_r W[f, r, :] = t K_g with K_g = sum_f s_f W[f]; concatenation:
h = t B + (s A + b)). So regulator DeepLIFT for all pairs needs the sequence tower once per gene, one
(R x U) fold per gene and dense algebra per (gene, condition) pair: no per-pair convolution.

The bilinear fusion (`model.fusion: bilinear`) multiplies a gene-side vector u = s P (+ E_g) by a
condition-side vector v = t Q: score = u . v / sqrt(d) + s p (+ e_g) + t q, and the head reads the
score and the products u_k v_k / sqrt(d). Products get DeepLIFT's Shapley-like rule: for z = x y, the
multiplier of x is (y + y0) / 2 and that of y is (x + x0) / 2, which splits Delta z exactly
(`product_multiplier`). With one modality fixed, its factor is the same at the input and the
reference, so the rule gives Delta z = u Delta v (regulator scores) or Delta u v (sequence scores):
the fold of the tensor product again, exact, and what the deeplift-package reference builds as a
Dense kernel. The per-gene embedding (E_g, e_g) and the baseline table of `model.offset` are
constants of the pair, the same at the input and every reference: they shift no difference and get
no score (the models' `gene` input is still needed: `gene_index` gives each promoter's dataset row).

k-mer counts (`model.sequence.kmer`) are piecewise constant in the promoter and carry no gradient:
they are held at the actual promoter's counts, at the input and at every reference, so sequence
scores (and `SequenceScores.delta`) cover the conv path only, f(x, k(x)) - f(x0, k(x)); a tower of
k-mer counts alone has nothing to attribute in the promoter and is refused there. Regulator scores
use the full sequence features, counts included.

Both directions use the same engine with `rule="rescale"` (DeepLIFT) or `rule="gradient"` (plain
gradients and reference zero: gradient x input).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import numpy as np
import tensorflow as tf

from deepreg.attribution import _network as net
from deepreg.errors import DeepRegError

NEAR_ZERO = 1e-7  # the deeplift package's NEAR_ZERO_THRESHOLD
RULES = ("rescale", "gradient")


# --------------------------------------------------------------------------------------------------
# The engine: forward passes that keep what the backward pass needs, and backward multiplier passes.
# --------------------------------------------------------------------------------------------------
def _relu_factor(pre, pre_ref, rule: str):
    """Multiplier of a ReLU: Delta y / Delta x (rescale), or the gradient at the actual input."""
    if rule == "gradient":
        return tf.cast(pre > 0, pre.dtype)
    delta = pre - pre_ref
    near = tf.abs(delta) < NEAR_ZERO
    ratio = (tf.nn.relu(pre) - tf.nn.relu(pre_ref)) / tf.where(near, tf.ones_like(delta), delta)
    at_reference = tf.cast(pre_ref > 0, pre.dtype) + tf.zeros_like(delta)
    return tf.where(near, at_reference, ratio)


def _conv(x, kernel, padding):
    return tf.nn.conv1d(x, kernel, stride=1, padding=padding.upper())


def _max_pool(x, step):
    return tf.nn.max_pool1d(x, step.options["pool"], step.options["stride"], step.options["padding"].upper())


def tower_forward(steps: Sequence[net.Step], x, x_ref, rule: str = "rescale"):
    """Run a chain of steps on inputs and references; return outputs and what backward needs.

    `x` and `x_ref` must broadcast against each other (a reference row per input, or one for all). A
    k-mer step reads the counts of `x` (the actual promoters) for both: they are held constant.
    """
    promoters = x
    saved = []
    for step in steps:
        if step.kind == net.CONV:
            kernel = tf.constant(step.arrays["kernel"])
            bias = tf.constant(step.arrays["bias"])
            saved.append(tf.shape(x))
            x = _conv(x, kernel, step.options["padding"]) + bias
            x_ref = _conv(x_ref, kernel, step.options["padding"]) + bias
        elif step.kind == net.DENSE:
            kernel, bias = tf.constant(step.arrays["kernel"]), tf.constant(step.arrays["bias"])
            saved.append(None)
            x, x_ref = x @ kernel + bias, x_ref @ kernel + bias
        elif step.kind == net.AFFINE:
            scale, shift = tf.constant(step.arrays["scale"]), tf.constant(step.arrays["shift"])
            saved.append(None)
            x, x_ref = x * scale + shift, x_ref * scale + shift
        elif step.kind == net.RELU:
            saved.append(_relu_factor(x, x_ref, rule))
            x, x_ref = tf.nn.relu(x), tf.nn.relu(x_ref)
        elif step.kind == net.GLOBAL_MAX:
            pooled = tf.reduce_max(x, axis=1)
            saved.append(tf.cast(tf.equal(x, pooled[:, None, :]), x.dtype))
            x, x_ref = pooled, tf.reduce_max(x_ref, axis=1)
        elif step.kind == net.MAX_POOL:
            pooled = _max_pool(x, step)
            saved.append((x, pooled))
            x, x_ref = pooled, _max_pool(x_ref, step)
        elif step.kind == net.MERGE_STRANDS:
            half = x.shape[-1] // 2
            first, mirror = x[..., :half], tf.reverse(x[..., half:], [-1])
            saved.append(tf.cast(first >= mirror, x.dtype))  # ties go to the first strand, as tf.maximum's gradient
            x = tf.maximum(first, mirror)
            x_ref = tf.maximum(x_ref[..., :half], tf.reverse(x_ref[..., half:], [-1]))
        elif step.kind == net.FLATTEN:
            saved.append(tf.shape(x))
            x = tf.reshape(x, (tf.shape(x)[0], -1))
            x_ref = tf.reshape(x_ref, (tf.shape(x_ref)[0], -1))
        elif step.kind == net.KMER:
            counts = kmer_features(step, promoters)
            alone = step.options["mode"] == "alone"
            saved.append(None if alone else tf.shape(x)[-1])
            x, x_ref = (counts, counts) if alone else (tf.concat([x, counts], -1), tf.concat([x_ref, counts], -1))
        else:  # pragma: no cover - read_network only produces the kinds above
            raise DeepRegError(f"attribution: unknown step {step.kind}")
    return x, x_ref, saved


def tower_backward(steps: Sequence[net.Step], saved, multipliers):
    """Propagate multipliers from the output of a chain of steps to its input (linear in them)."""
    m = multipliers
    for step, keep in zip(reversed(steps), reversed(saved)):
        if step.kind == net.CONV:
            m = tf.nn.conv1d_transpose(m, tf.constant(step.arrays["kernel"]), output_shape=keep, strides=1,
                                       padding=step.options["padding"].upper())
        elif step.kind == net.DENSE:
            m = m @ tf.transpose(tf.constant(step.arrays["kernel"]))
        elif step.kind == net.AFFINE:
            m = m * tf.constant(step.arrays["scale"])
        elif step.kind == net.RELU:
            m = m * keep
        elif step.kind == net.GLOBAL_MAX:
            m = m[:, None, :] * keep
        elif step.kind == net.MAX_POOL:
            inputs, pooled = keep
            pool, stride = step.options["pool"], step.options["stride"]
            m = tf.squeeze(tf.raw_ops.MaxPoolGrad(
                orig_input=inputs[:, None], orig_output=pooled[:, None], grad=m[:, None], ksize=[1, 1, pool, 1],
                strides=[1, 1, stride, 1], padding=step.options["padding"].upper()), 1)
        elif step.kind == net.MERGE_STRANDS:
            m = tf.concat([m * keep, tf.reverse(m * (1.0 - keep), [-1])], axis=-1)
        elif step.kind == net.FLATTEN:
            m = tf.reshape(m, keep)
        elif step.kind == net.KMER:
            if keep is None:
                raise DeepRegError(_KMER_ALONE)
            m = m[..., :keep]  # the counts' columns carry nothing back to the promoter
    return m


_KMER_ALONE = ("attribution: the sequence tower is k-mer counts alone (model.sequence.kmer with "
               "model.sequence.conv_layers 0); the counts carry no gradient, so there are no promoter scores")


@functools.lru_cache(maxsize=None)
def _kmer_counter(k: int, proximal: tuple[int, ...] = ()):
    from deepreg.models.bilinear import GeneKmerCounts

    return GeneKmerCounts(k, proximal, dtype="float32")


def kmer_features(step: net.Step, promoters):
    """The standardised k-mer counts of promoters (N x L x 4), computed as the model does: N x K
    (K x (1 + proximal windows) with `model.sequence.kmer_proximal`)."""
    counts = _kmer_counter(int(step.options["k"]), tuple(step.options.get("proximal", ())))(promoters)
    return counts * tf.constant(step.arrays["scale"]) + tf.constant(step.arrays["shift"])


def product_multiplier(m, other, other_ref):
    """DeepLIFT multiplier of one factor x of a product z = x y: m (y + y0) / 2 (Shapley-like rule).

    With the other factor's multiplier m (x + x0) / 2, Delta z = Delta x (y + y0)/2 + Delta y (x + x0)/2
    holds exactly, so summation to delta holds through the product. Attribution moves one modality at
    a time: the other factor is the same at the input and the reference (y0 = y) and the multiplier
    is m y.
    """
    return m * 0.5 * (other + other_ref)


def head_multipliers(steps: Sequence[net.Step], hidden, hidden_ref, rule: str = "rescale"):
    """Multipliers of the target with respect to the fused pre-activation (any leading axes)."""
    out, out_ref, saved = tower_forward(steps, hidden, hidden_ref, rule)
    seed = tf.ones_like(out)
    return tower_backward(steps, saved, seed), out[..., 0], out_ref[..., 0]


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
def _network(model, target="output") -> net.Network:
    return net.read_network(model, target)


def regulator_reference(regulators: np.ndarray, reference="zero") -> np.ndarray:
    """The regulator reference vector: 'zero' (no change: log ratio 0), 'mean' over conditions, or values."""
    regulators = np.asarray(regulators, np.float32)
    if isinstance(reference, str):
        if reference == "zero":
            return np.zeros(regulators.shape[1], np.float32)
        if reference == "mean":
            return regulators.mean(axis=0).astype(np.float32)
        raise DeepRegError(f"regulator reference {reference!r}: expected 'zero', 'mean' or a vector")
    values = np.asarray(reference, np.float32).reshape(-1)
    if values.shape[0] != regulators.shape[1]:
        raise DeepRegError(f"regulator reference: {values.shape[0]} values for {regulators.shape[1]} regulators")
    return values


def _model_input(sequences: np.ndarray, background=None) -> np.ndarray:
    from deepreg.data.encoding import as_model_input
    return as_model_input(np.asarray(sequences), background)


def sequence_features(network: net.Network, sequences: np.ndarray, *, background=None, block: int = 256) -> np.ndarray:
    """The sequence tower's output (G x F) for promoters (G x L x 4, one-hot)."""
    outputs = []
    for start in range(0, len(sequences), block):
        x = tf.constant(_model_input(sequences[start:start + block], background))
        y, _, _ = tower_forward(network.sequence, x, x)
        outputs.append(y.numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, network.sequence_width), np.float32)


# --------------------------------------------------------------------------------------------------
# Regulator scores
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RegulatorSums:
    """Regulator scores reduced over pairs (the full G x C x R array is never materialised).

    per_gene_abs[g, r] = sum_c |score(g, c, r)|; per_condition_abs[c, r] = sum_g |score(g, c, r)|;
    per_gene_signed[g, r] = sum_c score(g, c, r); total_abs[r] = sum_{g,c} |score(g, c, r)|.
    `delta_error` is the largest |sum_r score - (f(x) - f(x0))| seen (summation to delta; DeepLIFT only).
    """

    per_gene_abs: np.ndarray
    per_condition_abs: np.ndarray
    per_gene_signed: np.ndarray
    method: str
    reference: np.ndarray
    pairs: int
    delta_error: float = 0.0

    @property
    def total_abs(self) -> np.ndarray:
        return self.per_gene_abs.sum(axis=0)


def regulator_forward(network: net.Network, t, t_ref, rule: str = "rescale"):
    """The regulator features at the inputs and references, and what backward needs (the tower's saved values).

    With `model.regulators.skip` the raw regulator vector leads the tower's output.
    """
    phi, phi_ref, saved = tower_forward(network.regulators, t, t_ref, rule)
    if network.regulator_skip:
        phi, phi_ref = tf.concat([t, phi], -1), tf.concat([t_ref, phi_ref], -1)
    return phi, phi_ref, saved


class _Bilinear:
    """The bilinear fusion as tensors: both sides' projections, the vector the head reads, its multipliers.

    Gene side u = s P (+ E_g), a = s p (+ e_g); condition side v = t Q, b = t q; the head reads
    [score, u * v / sqrt(d)] (or the score alone) with score = sum_k u_k v_k / sqrt(d) + a + b.
    """

    def __init__(self, network: net.Network):
        weights = {key: tf.constant(value) for key, value in network.bilinear.items()}
        self.gene_kernel, self.gene_offset = weights["gene_kernel"], weights["gene_offset"]
        self.condition_kernel, self.condition_offset = weights["condition_kernel"], weights["condition_offset"]
        self.embedding, self.embedding_offset = weights.get("embedding"), weights.get("embedding_offset")
        self.scale = 1.0 / math.sqrt(network.rank)
        self.interaction = network.interaction

    def gene_side(self, features, rows):
        """u (N x d) and a (N) for sequence features N x F of the genes at dataset rows `rows`."""
        u, a = features @ self.gene_kernel, tf.linalg.matvec(features, self.gene_offset)
        if self.embedding is None:
            return u, a
        return u + tf.gather(self.embedding, rows), a + tf.gather(self.embedding_offset, rows)

    def condition_side(self, phi):
        """v (C x d) and b (C) for regulator features C x R'."""
        return phi @ self.condition_kernel, tf.linalg.matvec(phi, self.condition_offset)

    def fused(self, u, a, v, b):
        """What the head reads for every gene x condition: G x C x (1 + d), or G x C x 1 without interaction."""
        products = u[:, None, :] * v[None, :, :] * self.scale
        score = tf.reduce_sum(products, -1, keepdims=True) + a[:, None, None] + b[None, :, None]
        return tf.concat([score, products], -1) if self.interaction else score

    def multipliers(self, m_hidden):
        """Multipliers of the target w.r.t. the products u_k v_k (G x C x d, or x 1: the same for all k)
        and w.r.t. the offsets a and b (G x C), from those w.r.t. the head's input."""
        m_score = m_hidden[..., :1]
        m_products = m_score + m_hidden[..., 1:] if self.interaction else m_score
        return m_products * self.scale, m_score[..., 0]


class _RegulatorEngine:
    """Regulator multipliers for blocks of genes x all conditions, sequence features fixed (tensor, concat)."""

    def __init__(self, network: net.Network, regulators: np.ndarray, reference: np.ndarray, rule: str):
        self.network = network
        self.rule = rule
        t = tf.constant(regulators, tf.float32)
        t_ref = tf.constant(reference[None, :], tf.float32)
        # The regulator tower depends on the condition only: run it once for all conditions.
        self.phi, self.phi_ref, self.tower_saved = regulator_forward(network, t, t_ref, rule)
        self._prepare()
        self._block = tf.function(self._block_eager, reduce_retracing=True)

    def _prepare(self):
        network = self.network
        self.bias = tf.constant(network.fusion_bias)
        if network.fusion == net.TENSOR:
            self.kernel = tf.constant(network.fusion_tensor())  # F x R' x U
        else:
            kernel = network.fusion_kernel
            self.kernel_sequence = tf.constant(kernel[:network.sequence_width])
            self.kernel_regulators = tf.constant(kernel[network.sequence_width:])

    def _hidden(self, features, rows):
        """Fused pre-activations G_b x C x U at the inputs and G_b x 1 x U at the reference, and a saved value."""
        if self.network.fusion == net.TENSOR:
            folded = tf.einsum("gf,fru->gru", features, self.kernel)           # G_b x R' x U
            hidden = tf.einsum("cr,gru->gcu", self.phi, folded) + self.bias    # G_b x C x U
            hidden_ref = tf.einsum("xr,gru->gxu", self.phi_ref, folded) + self.bias  # G_b x 1 x U
            return hidden, hidden_ref, folded
        from_sequence = (features @ self.kernel_sequence)[:, None, :] + self.bias
        hidden = from_sequence + (self.phi @ self.kernel_regulators)[None]
        hidden_ref = from_sequence + (self.phi_ref @ self.kernel_regulators)[None]
        return hidden, hidden_ref, None

    def _phi_multipliers(self, m_hidden, folded):
        """Multipliers w.r.t. the regulator features, G_b x C x R', from those w.r.t. the fused pre-activations."""
        if self.network.fusion == net.TENSOR:
            return tf.einsum("gcu,gru->gcr", m_hidden, folded)
        return m_hidden @ tf.transpose(self.kernel_regulators)

    def _block_eager(self, features, rows):
        """features G_b x F, rows their dataset rows -> (multipliers at the regulator inputs G_b x C x R, f(x), f(x0))."""
        hidden, hidden_ref, saved = self._hidden(features, rows)
        m_hidden, out, out_ref = head_multipliers(self.network.head, hidden, hidden_ref, self.rule)
        m_phi = self._phi_multipliers(m_hidden, saved)
        if not self.network.regulators:
            return m_phi, out, out_ref
        # Backward through the regulator tower: its factors depend on the condition only.
        m_t = self._tower_backward_per_condition(tf.transpose(m_phi, (1, 0, 2)))
        return tf.transpose(m_t, (1, 0, 2)), out, out_ref

    def _tower_backward_per_condition(self, m):
        """m: C x G_b x R' -> C x G_b x R, with per-condition factors broadcast over genes."""
        direct = None
        if self.network.regulator_skip:
            direct, m = m[..., :self.network.n_regulators], m[..., self.network.n_regulators:]
        for step, keep in zip(reversed(self.network.regulators), reversed(self.tower_saved)):
            if step.kind == net.DENSE:
                m = m @ tf.transpose(tf.constant(step.arrays["kernel"]))
            elif step.kind == net.AFFINE:
                m = m * tf.constant(step.arrays["scale"])
            elif step.kind == net.RELU:
                m = m * keep[:, None, :]
        return m if direct is None else m + direct

    def block(self, features: np.ndarray, rows: np.ndarray):
        return self._block(tf.constant(features, tf.float32), tf.constant(rows, tf.int32))


class _BilinearRegulatorEngine(_RegulatorEngine):
    """The same for the bilinear fusion: v and b per condition, u and a per gene (the promoter fixed)."""

    def _prepare(self):
        self.fusion = _Bilinear(self.network)
        self.v, self.b = self.fusion.condition_side(self.phi)
        self.v_ref, self.b_ref = self.fusion.condition_side(self.phi_ref)

    def _hidden(self, features, rows):
        u, a = self.fusion.gene_side(features, rows)
        return self.fusion.fused(u, a, self.v, self.b), self.fusion.fused(u, a, self.v_ref, self.b_ref), u

    def _phi_multipliers(self, m_hidden, u):
        m_products, m_offsets = self.fusion.multipliers(m_hidden)
        u = u[:, None, :]
        m_v = product_multiplier(m_products, u, u)  # the promoter is fixed: u0 = u
        return (m_v @ tf.transpose(self.fusion.condition_kernel)
                + m_offsets[..., None] * self.fusion.condition_offset)


def _regulator_engine(network: net.Network, regulators, reference, rule) -> _RegulatorEngine:
    kind = _BilinearRegulatorEngine if network.fusion == net.BILINEAR else _RegulatorEngine
    return kind(network, regulators, reference, rule)


def gene_rows(network: net.Network, n_sequences: int, gene_index=None, genes=None) -> np.ndarray:
    """The dataset row of each promoter, what a per-gene embedding reads: `gene_index` (default 0..G-1).

    `genes` picks a subset (positions in the promoters given, as `regulator_scores(genes=)` does).
    """
    rows = np.arange(n_sequences) if gene_index is None else np.asarray(gene_index).reshape(-1)
    if len(rows) != n_sequences:
        raise DeepRegError(f"attribution: gene_index has {len(rows)} entries for {n_sequences} promoters")
    if genes is not None:
        rows = rows[np.asarray(genes)]
    limit = network.embedded_genes
    if limit and len(rows) and (rows.min() < 0 or rows.max() >= limit):
        raise DeepRegError(f"attribution: gene indices must lie in 0..{limit - 1}, the genes of the model's "
                           "embedding (model.gene_embedding); pass gene_index=, each promoter's dataset row")
    return rows.astype(np.int32)


def regulator_scores(model, sequences: np.ndarray, regulators: np.ndarray, *, reference="zero",
                     rule: str = "rescale", reduce: str = "none", genes=None, conditions=None,
                     background=None, target="output", block_genes: int = 64, progress=None, gene_index=None):
    """DeepLIFT scores of the regulator inputs for every (gene, condition) pair.

    model: a DeepREG block model (or a `Network`). sequences: G x L x 4 one-hot promoters;
    regulators: C x R regulator inputs (`Dataset.regulator_inputs()`); `genes` / `conditions` pick
    a subset (indices). `reference` is 'zero' (no change), 'mean' or a vector of R values. `rule`
    'rescale' is DeepLIFT; 'gradient' gives gradient x input (contribution = gradient x t).
    `gene_index`: the dataset row of each promoter given (default 0..G-1), read by a per-gene
    embedding; conditions need no index (a baseline offset is the same at input and reference).

    reduce='none' returns the G x C x R scores; 'abs_sum' returns `RegulatorSums` (for all pairs of a
    large dataset).
    """
    if rule not in RULES:
        raise DeepRegError(f"rule {rule!r}: expected one of {RULES}")
    if reduce not in ("none", "abs_sum"):
        raise DeepRegError(f"reduce {reduce!r}: expected 'none' or 'abs_sum'")
    network = _network(model, target)
    sequences = np.asarray(sequences)
    regulators = np.asarray(regulators, np.float32)
    rows = gene_rows(network, len(sequences), gene_index, genes)
    if genes is not None:
        sequences = sequences[np.asarray(genes)]
    if conditions is not None:
        regulators = regulators[np.asarray(conditions)]
    _check_shapes(network, sequences, regulators)
    ref = regulator_reference(regulators, reference)
    ref_for_diff = np.zeros_like(ref) if rule == "gradient" else ref  # gradient x input: x - 0
    engine = _regulator_engine(network, regulators, ref, rule)
    diff = tf.constant(regulators - ref_for_diff[None, :])  # C x R
    n_genes, n_conditions, n_regs = len(sequences), len(regulators), regulators.shape[1]
    if reduce == "none":
        scores = np.zeros((n_genes, n_conditions, n_regs), np.float32)
    else:
        per_gene_abs = np.zeros((n_genes, n_regs), np.float64)
        per_gene_signed = np.zeros((n_genes, n_regs), np.float64)
        per_condition_abs = np.zeros((n_conditions, n_regs), np.float64)
    delta_error = 0.0
    for start in range(0, n_genes, block_genes):
        chunk = sequences[start:start + block_genes]
        features = sequence_features(network, chunk, background=background)
        m_t, out, out_ref = engine.block(features, rows[start:start + block_genes])
        contributions = m_t * diff[None]
        if rule == "rescale":
            delta = out - out_ref
            error = tf.reduce_max(tf.abs(tf.reduce_sum(contributions, axis=-1) - delta))
            delta_error = max(delta_error, float(error))
        if reduce == "none":
            scores[start:start + len(chunk)] = contributions.numpy()
        else:
            absolute = tf.abs(contributions)
            per_gene_abs[start:start + len(chunk)] = tf.reduce_sum(absolute, axis=1).numpy()
            per_gene_signed[start:start + len(chunk)] = tf.reduce_sum(contributions, axis=1).numpy()
            per_condition_abs += tf.reduce_sum(absolute, axis=0).numpy()
        if progress is not None:
            progress(min(start + block_genes, n_genes), n_genes)
    if reduce == "none":
        return scores
    return RegulatorSums(per_gene_abs=per_gene_abs, per_condition_abs=per_condition_abs,
                         per_gene_signed=per_gene_signed, method="deeplift" if rule == "rescale" else "gradient_x_input",
                         reference=ref, pairs=n_genes * n_conditions, delta_error=delta_error)


def _check_shapes(network: net.Network, sequences: np.ndarray, regulators: np.ndarray) -> None:
    if sequences.ndim != 3 or sequences.shape[1:] != (network.sequence_length, 4):
        raise DeepRegError(f"attribution: promoters of shape {sequences.shape} do not fit the model "
                           f"(expected G x {network.sequence_length} x 4)")
    if regulators.ndim != 2 or regulators.shape[1] != network.n_regulators:
        raise DeepRegError(f"attribution: regulator inputs of shape {regulators.shape} do not fit the model "
                           f"(expected C x {network.n_regulators})")


# --------------------------------------------------------------------------------------------------
# Sequence scores
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SequenceScores:
    """Sequence attribution for G genes.

    scores: contributions of the observed bases, G x [C x] L x 4 (zero off the observed base);
    hypothetical: the contribution each base would have at each position (for TF-MoDISco);
    reduce: 'sum' or 'mean' over the conditions, or 'none' (then a condition axis is kept);
    delta: f(x) - mean over references of f(x0), the same shape without L x 4 (per condition summed).
    """

    scores: np.ndarray
    hypothetical: np.ndarray
    delta: np.ndarray
    method: str
    reduce: str
    conditions: np.ndarray
    n_references: int


class _SequenceEngine:
    """Sequence multipliers for blocks of (gene, reference) rows x chosen conditions, regulators fixed."""

    def __init__(self, network: net.Network, regulators: np.ndarray, rule: str):
        self.network = network
        self.rule = rule
        t = tf.constant(regulators, tf.float32)
        phi, _, _ = regulator_forward(network, t, t, rule)
        self._prepare(phi)
        self._run = tf.function(self._run_eager, reduce_retracing=True)

    def _prepare(self, phi):
        network = self.network
        bias = tf.constant(network.fusion_bias)
        if network.fusion == net.TENSOR:
            # Fold each condition's regulator features into the fusion kernel: C x F x U.
            self.folded = tf.einsum("cr,fru->cfu", phi, tf.constant(network.fusion_tensor()))
            self.offset = bias
        else:
            kernel = network.fusion_kernel
            self.kernel_sequence = tf.constant(kernel[:network.sequence_width])
            self.offset = (phi @ tf.constant(kernel[network.sequence_width:])) + bias  # C x U

    def _fused(self, features, rows):
        if self.network.fusion == net.TENSOR:
            return tf.einsum("nf,cfu->ncu", features, self.folded) + self.offset
        return (features @ self.kernel_sequence)[:, None, :] + self.offset[None]

    def _feature_multipliers(self, m_hidden):
        """Multipliers w.r.t. the sequence features, N x C x F, from those w.r.t. the fused pre-activations."""
        if self.network.fusion == net.TENSOR:
            return tf.einsum("ncu,cfu->ncf", m_hidden, self.folded)
        return m_hidden @ tf.transpose(self.kernel_sequence)

    def _run_eager(self, x, x_ref, rows, keep_conditions: bool):
        """x, x_ref: N x L x 4 (aligned), rows: their genes' dataset rows.

        Returns input multipliers N x [C x] L x 4, f(x) and f(x_ref) N x C.
        """
        network = self.network
        features, features_ref, saved = tower_forward(network.sequence, x, x_ref, self.rule)
        hidden, hidden_ref = self._fused(features, rows), self._fused(features_ref, rows)
        m_hidden, out, out_ref = head_multipliers(network.head, hidden, hidden_ref, self.rule)  # N x C x U
        m_features = self._feature_multipliers(m_hidden)
        if not keep_conditions:
            return tower_backward(network.sequence, saved, tf.reduce_sum(m_features, axis=1)), out, out_ref
        n, c = tf.shape(m_features)[0], tf.shape(m_features)[1]
        tiled = [_tile_saved(step, keep, c) for step, keep in zip(network.sequence, saved)]
        flat = tf.reshape(m_features, (n * c, -1))
        m_x = tower_backward(network.sequence, tiled, flat)
        return tf.reshape(m_x, (n, c, tf.shape(x)[1], tf.shape(x)[2])), out, out_ref

    def run(self, x, x_ref, rows, keep_conditions):
        return self._run(tf.constant(x), tf.constant(x_ref), tf.constant(rows, tf.int32), keep_conditions)


class _BilinearSequenceEngine(_SequenceEngine):
    """The same for the bilinear fusion: v and b per condition (the regulators fixed), u and a per row."""

    def _prepare(self, phi):
        self.fusion = _Bilinear(self.network)
        self.v, self.b = self.fusion.condition_side(phi)

    def _fused(self, features, rows):
        u, a = self.fusion.gene_side(features, rows)
        return self.fusion.fused(u, a, self.v, self.b)

    def _feature_multipliers(self, m_hidden):
        m_products, m_offsets = self.fusion.multipliers(m_hidden)
        v = self.v[None]
        m_u = product_multiplier(m_products, v, v)  # the regulators are fixed: v0 = v
        return m_u @ tf.transpose(self.fusion.gene_kernel) + m_offsets[..., None] * self.fusion.gene_offset


def _sequence_engine(network: net.Network, regulators, rule) -> _SequenceEngine:
    if network.kmer_mode == "alone":
        raise DeepRegError(_KMER_ALONE)
    kind = _BilinearSequenceEngine if network.fusion == net.BILINEAR else _SequenceEngine
    return kind(network, regulators, rule)


def _tile_saved(step: net.Step, keep, copies):
    """Repeat a saved forward quantity for `copies` conditions per row (row-major: row, condition)."""
    if step.kind in (net.CONV, net.FLATTEN):
        return tf.concat([[keep[0] * copies], keep[1:]], axis=0)
    if step.kind in (net.RELU, net.GLOBAL_MAX, net.MERGE_STRANDS):
        return tf.repeat(keep, copies, axis=0)
    if step.kind == net.MAX_POOL:
        return tuple(tf.repeat(item, copies, axis=0) for item in keep)
    return keep


def sequence_scores(model, sequences: np.ndarray, regulators: np.ndarray, *, references=None,
                    n_shuffles: int = 10, seed: int = 0, rule: str = "rescale", conditions=None,
                    reduce: str = "sum", background=None, target="output", block_rows: int = 64,
                    gene_index=None) -> SequenceScores:
    """DeepLIFT (or gradient x input) scores of promoter bases, with the regulators of each condition fixed.

    references: None for `n_shuffles` dinucleotide shuffles of each promoter (DeepLIFT's genomics
    default; ignored by rule='gradient', whose reference is all zeros), or an array G x K x L x 4.
    Scores are averaged over the K references and summed ('sum'), averaged ('mean') or kept ('none')
    over the conditions (all, or the indices in `conditions`). `gene_index`: the dataset row of each
    promoter (default 0..G-1), read by a per-gene embedding.
    """
    from deepreg.attribution.ersatz import dinucleotide_shuffle

    if rule not in RULES:
        raise DeepRegError(f"rule {rule!r}: expected one of {RULES}")
    if reduce not in ("sum", "mean", "none"):
        raise DeepRegError(f"reduce {reduce!r}: expected 'sum', 'mean' or 'none'")
    network = _network(model, target)
    sequences = np.asarray(sequences)
    regulators = np.asarray(regulators, np.float32)
    conditions = np.arange(len(regulators)) if conditions is None else np.asarray(conditions)
    chosen = regulators[conditions]
    _check_shapes(network, sequences, chosen)
    rows = gene_rows(network, len(sequences), gene_index)
    n_genes, length = sequences.shape[:2]
    if rule == "gradient":
        references = np.zeros((n_genes, 1, length, 4), np.float32)
    elif references is None:
        rng = np.random.default_rng(seed)
        references = np.stack([dinucleotide_shuffle(s, n_shuffles, rng) for s in sequences]) if n_genes else \
            np.zeros((0, n_shuffles, length, 4), np.uint8)
    references = np.asarray(references)
    if references.ndim != 4 or references.shape[0] != n_genes or references.shape[2:] != (length, 4):
        raise DeepRegError(f"sequence references of shape {references.shape}: expected G x K x {length} x 4")
    n_refs = references.shape[1]
    engine = _sequence_engine(network, chosen, rule)
    keep = reduce == "none"
    shape = (n_genes, len(conditions), length, 4) if keep else (n_genes, length, 4)
    hypothetical = np.zeros(shape, np.float32)
    scores = np.zeros(shape, np.float32)
    delta = np.zeros((n_genes, len(conditions)), np.float32)
    genes_per_block = max(1, block_rows // (n_refs * (len(conditions) if keep else 1)))
    for start in range(0, n_genes, genes_per_block):
        stop = min(start + genes_per_block, n_genes)
        x = _model_input(sequences[start:stop], background)                                  # B x L x 4
        refs = _model_input(references[start:stop].reshape(-1, length, 4), background)      # B*K x L x 4
        tiled = np.repeat(x, n_refs, axis=0)
        m_x, out, out_ref = engine.run(tiled, refs, np.repeat(rows[start:stop], n_refs), keep)
        m_x = m_x.numpy()
        # Hypothetical contribution of base b at a position: sum_c' m[c'] (e_b[c'] - ref[c']).
        if keep:
            refs_k = refs[:, None]
            x_k = tiled[:, None]
        else:
            refs_k, x_k = refs, tiled
        if rule == "gradient":
            hyp = m_x  # gradient x (one-hot of base b) = the gradient itself
        else:
            hyp = m_x - (m_x * refs_k).sum(axis=-1, keepdims=True)
        actual = hyp * x_k  # the observed base's hypothetical contribution (gradient x input for 'gradient')
        block_shape = (stop - start, n_refs) + actual.shape[1:]
        hypothetical[start:stop] = hyp.reshape(block_shape).mean(axis=1)
        scores[start:stop] = actual.reshape(block_shape).mean(axis=1)
        delta[start:stop] = (out - out_ref).numpy().reshape(stop - start, n_refs, -1).mean(axis=1)
    if reduce == "mean":
        scores /= len(conditions)
        hypothetical /= len(conditions)
    return SequenceScores(scores=scores, hypothetical=hypothetical, delta=delta,
                          method="deeplift" if rule == "rescale" else "gradient_x_input", reduce=reduce,
                          conditions=conditions, n_references=n_refs)


def sequence_contributions(model, sequences: np.ndarray, references: np.ndarray, regulators: np.ndarray, *,
                           background=None, target="output", gene_index=None) -> np.ndarray:
    """Raw DeepLIFT contributions m x (x - x0) per reference: G x K x C x L x 4 (small inputs; for cross-checks).

    This is what the deeplift package returns for one reference at a time; `sequence_scores` turns the
    multipliers into hypothetical scores and averages over the references.
    """
    network = _network(model, target)
    sequences, references = np.asarray(sequences), np.asarray(references)
    regulators = np.asarray(regulators, np.float32)
    _check_shapes(network, sequences, regulators)
    rows = gene_rows(network, len(sequences), gene_index)
    n_genes, n_refs = references.shape[:2]
    x = np.repeat(_model_input(sequences, background), n_refs, axis=0)
    x0 = _model_input(references.reshape((-1,) + references.shape[2:]), background)
    multipliers, _, _ = _sequence_engine(network, regulators, "rescale").run(x, x0, np.repeat(rows, n_refs), True)
    contributions = multipliers.numpy() * (x - x0)[:, None]
    return contributions.reshape((n_genes, n_refs) + contributions.shape[1:])
