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

Both directions use the same engine with `rule="rescale"` (DeepLIFT) or `rule="gradient"` (plain
gradients, for gradient x input; see `gradients.py`).
"""

from __future__ import annotations

import dataclasses
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

    `x` and `x_ref` must broadcast against each other (a reference row per input, or one for all).
    """
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
    return m


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


class _RegulatorEngine:
    """Regulator multipliers for blocks of genes x all conditions, sequence features fixed."""

    def __init__(self, network: net.Network, regulators: np.ndarray, reference: np.ndarray, rule: str):
        self.network = network
        self.rule = rule
        t = tf.constant(regulators, tf.float32)
        t_ref = tf.constant(reference[None, :], tf.float32)
        # The regulator tower depends on the condition only: run it once for all conditions.
        phi, phi_ref, self.tower_saved = tower_forward(network.regulators, t, t_ref, rule)
        self.phi, self.phi_ref = phi, phi_ref
        self.inputs = t
        self.input_ref = t_ref
        self.bias = tf.constant(network.fusion_bias)
        if network.fusion == net.TENSOR:
            self.kernel = tf.constant(network.fusion_tensor())  # F x R' x U
        else:
            kernel = network.fusion_kernel
            self.kernel_sequence = tf.constant(kernel[:network.sequence_width])
            self.kernel_regulators = tf.constant(kernel[network.sequence_width:])
        self._block = tf.function(self._block_eager, reduce_retracing=True)

    def _block_eager(self, features):
        """features: G_b x F -> (multipliers at the regulator inputs G_b x C x R, f(x), f(x0))."""
        network = self.network
        if network.fusion == net.TENSOR:
            folded = tf.einsum("gf,fru->gru", features, self.kernel)           # G_b x R' x U
            hidden = tf.einsum("cr,gru->gcu", self.phi, folded) + self.bias    # G_b x C x U
            hidden_ref = tf.einsum("xr,gru->gxu", self.phi_ref, folded) + self.bias  # G_b x 1 x U
        else:
            from_sequence = (features @ self.kernel_sequence)[:, None, :] + self.bias
            hidden = from_sequence + (self.phi @ self.kernel_regulators)[None]
            hidden_ref = from_sequence + (self.phi_ref @ self.kernel_regulators)[None]
        m_hidden, out, out_ref = head_multipliers(network.head, hidden, hidden_ref, self.rule)
        if network.fusion == net.TENSOR:
            m_phi = tf.einsum("gcu,gru->gcr", m_hidden, folded)
        else:
            m_phi = m_hidden @ tf.transpose(self.kernel_regulators)
        if network.regulators:
            n_genes, n_conditions = tf.shape(m_phi)[0], tf.shape(m_phi)[1]
            flat = tf.reshape(tf.transpose(m_phi, (1, 0, 2)), (n_conditions, -1, tf.shape(m_phi)[2]))
            # Backward through the regulator tower: its factors depend on the condition only.
            m_t = self._tower_backward_per_condition(flat)
            m_t = tf.transpose(m_t, (1, 0, 2))
        else:
            m_t = m_phi
        return m_t, out, out_ref

    def _tower_backward_per_condition(self, m):
        """m: C x G_b x R' -> C x G_b x R, with per-condition factors broadcast over genes."""
        for step, keep in zip(reversed(self.network.regulators), reversed(self.tower_saved)):
            if step.kind == net.DENSE:
                m = m @ tf.transpose(tf.constant(step.arrays["kernel"]))
            elif step.kind == net.AFFINE:
                m = m * tf.constant(step.arrays["scale"])
            elif step.kind == net.RELU:
                m = m * keep[:, None, :]
        return m

    def block(self, features: np.ndarray):
        m_t, out, out_ref = self._block(tf.constant(features, tf.float32))
        return m_t, out, out_ref


def regulator_scores(model, sequences: np.ndarray, regulators: np.ndarray, *, reference="zero",
                     rule: str = "rescale", reduce: str = "none", genes=None, conditions=None,
                     background=None, target="output", block_genes: int = 64, progress=None):
    """DeepLIFT scores of the regulator inputs for every (gene, condition) pair.

    model: a DeepREG block model (or a `Network`). sequences: G x L x 4 one-hot promoters;
    regulators: C x R regulator inputs (`Dataset.regulator_inputs()`); `genes` / `conditions` pick
    a subset (indices). `reference` is 'zero' (no change), 'mean' or a vector of R values. `rule`
    'rescale' is DeepLIFT; 'gradient' gives gradient x input (contribution = gradient x t).

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
    if genes is not None:
        sequences = sequences[np.asarray(genes)]
    if conditions is not None:
        regulators = regulators[np.asarray(conditions)]
    _check_shapes(network, sequences, regulators)
    ref = regulator_reference(regulators, reference)
    ref_for_diff = np.zeros_like(ref) if rule == "gradient" else ref  # gradient x input: x - 0
    engine = _RegulatorEngine(network, regulators, ref, rule)
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
        m_t, out, out_ref = engine.block(features)
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
        phi, _, _ = tower_forward(network.regulators, t, t, rule)
        bias = tf.constant(network.fusion_bias)
        if network.fusion == net.TENSOR:
            # Fold each condition's regulator features into the fusion kernel: C x F x U.
            self.folded = tf.einsum("cr,fru->cfu", phi, tf.constant(network.fusion_tensor()))
            self.offset = bias
        else:
            kernel = network.fusion_kernel
            self.kernel_sequence = tf.constant(kernel[:network.sequence_width])
            self.offset = (phi @ tf.constant(kernel[network.sequence_width:])) + bias  # C x U
        self._run = tf.function(self._run_eager, reduce_retracing=True)

    def _fused(self, features):
        if self.network.fusion == net.TENSOR:
            return tf.einsum("nf,cfu->ncu", features, self.folded) + self.offset
        return (features @ self.kernel_sequence)[:, None, :] + self.offset[None]

    def _run_eager(self, x, x_ref, keep_conditions: bool):
        """x, x_ref: N x L x 4 (aligned). Returns input multipliers N x [C x] L x 4, f(x) and f(x_ref) N x C."""
        network = self.network
        features, features_ref, saved = tower_forward(network.sequence, x, x_ref, self.rule)
        hidden, hidden_ref = self._fused(features), self._fused(features_ref)
        m_hidden, out, out_ref = head_multipliers(network.head, hidden, hidden_ref, self.rule)  # N x C x U
        if network.fusion == net.TENSOR:
            m_features = tf.einsum("ncu,cfu->ncf", m_hidden, self.folded)
        else:
            m_features = m_hidden @ tf.transpose(self.kernel_sequence)
        if not keep_conditions:
            return tower_backward(network.sequence, saved, tf.reduce_sum(m_features, axis=1)), out, out_ref
        n, c = tf.shape(m_features)[0], tf.shape(m_features)[1]
        tiled = [_tile_saved(step, keep, c) for step, keep in zip(network.sequence, saved)]
        flat = tf.reshape(m_features, (n * c, -1))
        m_x = tower_backward(network.sequence, tiled, flat)
        return tf.reshape(m_x, (n, c, tf.shape(x)[1], tf.shape(x)[2])), out, out_ref

    def run(self, x, x_ref, keep_conditions):
        return self._run(tf.constant(x), tf.constant(x_ref), keep_conditions)


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
                    reduce: str = "sum", background=None, target="output", block_rows: int = 64) -> SequenceScores:
    """DeepLIFT (or gradient x input) scores of promoter bases, with the regulators of each condition fixed.

    references: None for `n_shuffles` dinucleotide shuffles of each promoter (DeepLIFT's genomics
    default; ignored by rule='gradient', whose reference is all zeros), or an array G x K x L x 4.
    Scores are averaged over the K references and summed ('sum'), averaged ('mean') or kept ('none')
    over the conditions (all, or the indices in `conditions`).
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
    engine = _SequenceEngine(network, chosen, rule)
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
        m_x, out, out_ref = engine.run(tiled, refs, keep)
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
                           background=None, target="output") -> np.ndarray:
    """Raw DeepLIFT contributions m x (x - x0) per reference: G x K x C x L x 4 (small inputs; for cross-checks).

    This is what the deeplift package returns for one reference at a time; `sequence_scores` turns the
    multipliers into hypothetical scores and averages over the references.
    """
    network = _network(model, target)
    sequences, references = np.asarray(sequences), np.asarray(references)
    regulators = np.asarray(regulators, np.float32)
    _check_shapes(network, sequences, regulators)
    n_genes, n_refs = references.shape[:2]
    x = np.repeat(_model_input(sequences, background), n_refs, axis=0)
    x0 = _model_input(references.reshape((-1,) + references.shape[2:]), background)
    multipliers, _, _ = _SequenceEngine(network, regulators, "rescale").run(x, x0, True)
    contributions = multipliers.numpy() * (x - x0)[:, None]
    return contributions.reshape((n_genes, n_refs) + contributions.shape[1:])
