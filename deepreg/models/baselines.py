"""Baselines that need no network, fitted and scored on the same pairs as the network.

Every baseline works on the factored data (never a pairs table):

- ``expression``: G x C log2 ratios (genes x conditions), NaN = missing;
- ``split``: G x C int8, 0 = train, 1 = validation, 2 = test, -1 = not used;
- ``regulators``: C x R expression of the R regulators in each condition;
- ``sequences``: G x L x 4 one-hot promoters (all-zero rows = N or padding).

Each ``fit_X`` returns a :class:`BaselineFit` holding a G x C prediction for every pair, and each
``fit_predict_X`` returns that array alone. Only observed train pairs (split == 0) enter a fit;
validation pairs (split == 1) only choose a hyperparameter (a rank, a ridge alpha) among candidates,
and are not needed when a single candidate is given. Test pairs are never read.

The two ridge baselines share one solver, :func:`masked_ridge_predictions`: many ridge regressions on
one design matrix, each with its own mask of observed samples (genes see different train conditions
under a random-pair split), solved together by preconditioned conjugate gradients in the principal
axes of the design, so that no per-task Gram matrix is ever formed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deepreg.data.splits import TEST, TRAIN, VALIDATION
from deepreg.errors import DeepRegError

DEFAULT_RANKS = (1, 2, 5, 10, 20, 40, 80, 120, 160)
DEFAULT_TRANS_ALPHAS = tuple(10.0 ** np.arange(-2.0, 3.5, 0.5))
DEFAULT_CIS_ALPHAS = tuple(10.0 ** np.arange(-1.0, 4.5, 0.5))
DEFAULT_THRESHOLDS = (-0.5, 0.5)
# The proximal window of the k-mer ridge that matches the held-out-genes network's features.
PROXIMAL_WINDOWS = (100, 250, 500)


@dataclass
class BaselineFit:
    """Predictions for every (gene, condition) pair and the hyperparameter chosen on validation."""

    predictions: np.ndarray
    hyperparameter: dict = field(default_factory=dict)
    validation_mse: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# masks and checks


def observed_mask(expression: np.ndarray, split: np.ndarray, which: int) -> np.ndarray:
    """Pairs assigned to split ``which`` whose expression value is present."""
    return (np.asarray(split) == which) & np.isfinite(expression)


def _train_values(expression: np.ndarray, split: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 matrix with zeros outside observed train pairs, and the mask of those pairs."""
    _check_matrices(expression, split)
    train = observed_mask(expression, split, TRAIN)
    if not train.any():
        raise DeepRegError("split has no observed training pair (split == 0 with a finite value)")
    return np.where(train, expression, 0.0).astype(np.float64), train


def _check_matrices(expression: np.ndarray, split: np.ndarray) -> None:
    if expression.ndim != 2 or expression.shape != np.shape(split):
        raise DeepRegError(
            f"expression {expression.shape} and split {np.shape(split)} must be the same G x C shape"
        )


def _masked_mean(values: np.ndarray, mask: np.ndarray, axis: int, fallback: float) -> np.ndarray:
    """Mean of ``values`` over ``mask`` along ``axis``; ``fallback`` where nothing is observed."""
    counts = mask.sum(axis=axis)
    sums = np.where(mask, values, 0.0).sum(axis=axis)
    return np.divide(sums, counts, out=np.full(counts.shape, fallback, dtype=np.float64), where=counts > 0)


def validation_mse(predictions: np.ndarray, expression: np.ndarray, split: np.ndarray) -> float:
    """Mean squared error on the observed validation pairs (the only use of validation)."""
    mask = observed_mask(expression, split, VALIDATION)
    if not mask.any():
        raise DeepRegError("choosing a hyperparameter needs validation pairs (split == 1); none found")
    return float(np.mean((predictions[mask] - expression[mask]) ** 2))


# ----------------------------------------------------------------------------------------------
# baselines without hyperparameters


def fit_predict_zero(expression: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Predict no change (log2 ratio 0) everywhere."""
    _check_matrices(expression, split)
    return np.zeros(expression.shape, dtype=np.float64)


def fit_predict_gene_mean(expression: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Each gene's mean over its train pairs.

    A gene without any train pair (a held-out gene) gets the global train mean, the best constant
    the training data offers for an unseen gene.
    """
    values, train = _train_values(expression, split)
    gene_means = _masked_mean(values, train, axis=1, fallback=values[train].mean())
    return np.repeat(gene_means[:, None], expression.shape[1], axis=1)


def fit_predict_condition_mean(expression: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Each condition's mean over its train pairs; held-out conditions get the global train mean."""
    values, train = _train_values(expression, split)
    condition_means = _masked_mean(values, train, axis=0, fallback=values[train].mean())
    return np.repeat(condition_means[None, :], expression.shape[0], axis=0)


def fit_additive(expression: np.ndarray, split: np.ndarray) -> BaselineFit:
    """Least-squares fit of global mean + gene effect + condition effect on the train pairs.

    A gene or condition with no train pair keeps a zero effect, so a held-out gene is predicted by
    global mean + condition effect, a held-out condition by global mean + gene effect.
    """
    values, train = _train_values(expression, split)
    return BaselineFit(_additive_matrix(_additive_effects(values, train)))


def fit_predict_additive(expression: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Global mean + gene effect + condition effect; see :func:`fit_additive`."""
    return fit_additive(expression, split).predictions


AdditiveEffects = tuple[float, np.ndarray, np.ndarray]


def _additive_effects(
    values: np.ndarray,
    observed: np.ndarray,
    start: AdditiveEffects | None = None,
    tol: float = 1e-8,
    max_iter: int = 500,
) -> AdditiveEffects:
    """Global mean, gene effects and condition effects minimising squared error on ``observed``.

    Block coordinate descent (alternating conditional means), which converges to the least-squares
    fit whatever the missingness pattern; ``start`` warm-starts it. The fit only fixes the sum of a
    gene and a condition effect, so both kinds are centred (mean zero over the observed pairs) to
    make the global mean the level a gene or condition without observations falls back to.
    """
    n_genes, n_conditions = values.shape
    grand_mean, gene_effect, condition_effect = start or (0.0, np.zeros(n_genes), np.zeros(n_conditions))
    weights = observed.astype(np.float64)
    observed_values = np.where(observed, values, 0.0)
    gene_sums, condition_sums = observed_values.sum(axis=1), observed_values.sum(axis=0)
    gene_counts, condition_counts = weights.sum(axis=1), weights.sum(axis=0)
    safe_gene_counts, safe_condition_counts = np.maximum(gene_counts, 1.0), np.maximum(condition_counts, 1.0)
    for _ in range(max_iter):
        previous_gene, previous_condition = gene_effect, condition_effect
        fitted_sum = gene_counts @ gene_effect + condition_counts @ condition_effect
        grand_mean = (gene_sums.sum() - fitted_sum) / gene_counts.sum()
        gene_effect = (gene_sums - grand_mean * gene_counts - weights @ condition_effect) / safe_gene_counts
        condition_effect = (
            condition_sums - grand_mean * condition_counts - gene_effect @ weights
        ) / safe_condition_counts
        change = max(np.abs(gene_effect - previous_gene).max(), np.abs(condition_effect - previous_condition).max())
        if change < tol:
            break
    return _centred_effects(grand_mean, gene_effect, condition_effect, observed)


def _centred_effects(
    grand_mean: float, gene_effect: np.ndarray, condition_effect: np.ndarray, observed: np.ndarray
) -> AdditiveEffects:
    """Move the observed-pair mean of each kind of effect into the global mean; unseen effects stay 0."""
    gene_counts, condition_counts = observed.sum(axis=1), observed.sum(axis=0)
    gene_shift = gene_counts @ gene_effect / gene_counts.sum()
    condition_shift = condition_counts @ condition_effect / condition_counts.sum()
    return (
        grand_mean + gene_shift + condition_shift,
        np.where(gene_counts > 0, gene_effect - gene_shift, 0.0),
        np.where(condition_counts > 0, condition_effect - condition_shift, 0.0),
    )


def _additive_matrix(effects: AdditiveEffects) -> np.ndarray:
    grand_mean, gene_effect, condition_effect = effects
    return grand_mean + gene_effect[:, None] + condition_effect[None, :]


# ----------------------------------------------------------------------------------------------
# low-rank matrix completion


def fit_low_rank_completion(
    expression: np.ndarray,
    split: np.ndarray,
    ranks: tuple[int, ...] = DEFAULT_RANKS,
    tol: float = 1e-5,
    max_iter: int = 300,
) -> BaselineFit:
    """Complete the G x C matrix from its train entries: additive effects + a shrunken rank-k matrix.

    Rank-k soft-impute with the additive effects fitted jointly. Each iteration refits the additive
    effects to the train entries minus the low-rank part, fills the non-train entries of the
    remainder with the current low-rank part, and keeps the top k singular components of that
    filled matrix, each singular value shrunk by the (k+1)-th one. Why shrink: plain hard-impute at
    a fixed rank keeps fitting noise as it iterates (on the Gasch data, rank 20's validation MSE
    drifts from 0.17 to 0.21 and rank 40's to 0.41), so its result depends on when it is stopped;
    shrinking by the (k+1)-th singular value, the soft-impute threshold at which exactly k
    components survive, makes the rank the only knob and converges in a few tens of iterations.
    Fitting the effects jointly (rather than subtracting them once) keeps a rank-k signal at rank k.

    The SVD comes from the C x C Gram matrix (C is small); ranks are visited in increasing order,
    each warm-started from the previous rank's solution, and the rank with the lowest validation MSE
    is returned. A held-out gene or condition (an empty row or column) gets no low-rank part, only
    its additive prediction.
    """
    values, train = _train_values(expression, split)
    max_rank = min(expression.shape) - 1
    low_rank = np.zeros_like(values)
    effects = None
    fits = {}
    for rank in sorted({min(int(r), max_rank) for r in ranks}):
        effects, low_rank = _additive_plus_low_rank(values, train, rank, effects, low_rank, tol, max_iter)
        fits[rank] = _additive_matrix(effects) + low_rank
    return _select_on_validation(fits, "rank", expression, split)


def fit_predict_low_rank_completion(
    expression: np.ndarray, split: np.ndarray, ranks: tuple[int, ...] = DEFAULT_RANKS
) -> np.ndarray:
    """Rank-k soft-impute completion, rank chosen on validation; see :func:`fit_low_rank_completion`."""
    return fit_low_rank_completion(expression, split, ranks).predictions


def _additive_plus_low_rank(
    values: np.ndarray,
    observed: np.ndarray,
    rank: int,
    effects: AdditiveEffects | None,
    low_rank: np.ndarray,
    tol: float,
    max_iter: int,
) -> tuple[AdditiveEffects, np.ndarray]:
    """Additive effects and a shrunken rank-``rank`` matrix whose sum fits ``values`` on ``observed``.

    Alternates a couple of additive sweeps with one low-rank update (each step lowers the same
    objective, so the effects need not converge in between), then settles the effects at the end.
    """
    for _ in range(max_iter):
        effects = _additive_effects(values - low_rank, observed, effects, max_iter=2)
        filled = np.where(observed, values - _additive_matrix(effects), low_rank)
        updated = _shrunken_rank_k(filled, rank)
        change = np.linalg.norm(updated - low_rank) / max(np.linalg.norm(updated), 1e-12)
        low_rank = updated
        if change < tol:
            break
    return _additive_effects(values - low_rank, observed, effects), low_rank


def _shrunken_rank_k(matrix: np.ndarray, rank: int) -> np.ndarray:
    """Top ``rank`` SVD components of a tall matrix, singular values minus the (rank+1)-th one.

    Computed from the small C x C Gram matrix: its eigenvectors are the right singular vectors and
    its eigenvalues the squared singular values.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(matrix.T @ matrix)
    singular_values = np.sqrt(np.maximum(eigenvalues[::-1], 0.0))
    axes = eigenvectors[:, ::-1][:, :rank]
    top = singular_values[:rank]
    shrinkage = np.divide(top - singular_values[rank], top, out=np.zeros_like(top), where=top > 0)
    return ((matrix @ axes) * shrinkage) @ axes.T


# ----------------------------------------------------------------------------------------------
# ridge regressions: trans (regulators) and cis (promoter k-mers)


def fit_trans_ridge(
    expression: np.ndarray,
    split: np.ndarray,
    regulators: np.ndarray,
    alphas: tuple[float, ...] = DEFAULT_TRANS_ALPHAS,
) -> BaselineFit:
    """Per gene, ridge regression of its expression on the regulators' expression (C x R).

    Each gene is one regression over its own train conditions; its intercept is its train mean.
    ``alphas`` are relative to the mean squared norm of a centred regulator vector (the mean
    diagonal of the linear kernel), so the grid means the same on any data; the chosen absolute
    alpha is reported too. Held-out genes get the global train mean.
    """
    _check_matrices(expression, split)
    regulators = np.nan_to_num(np.asarray(regulators, dtype=np.float64))
    if regulators.shape[0] != expression.shape[1]:
        raise DeepRegError(
            f"regulators has {regulators.shape[0]} rows, expected one per condition ({expression.shape[1]})"
        )
    train = observed_mask(expression, split, TRAIN)
    paths, absolute_alphas = masked_ridge_predictions(regulators, expression, train, alphas)
    return _select_on_validation(paths, "alpha", expression, split, absolute=absolute_alphas)


def fit_predict_trans_ridge(
    expression: np.ndarray,
    split: np.ndarray,
    regulators: np.ndarray,
    alphas: tuple[float, ...] = DEFAULT_TRANS_ALPHAS,
) -> np.ndarray:
    """Trans-only ridge on the regulators; see :func:`fit_trans_ridge`."""
    return fit_trans_ridge(expression, split, regulators, alphas).predictions


def fit_cis_kmer_ridge(
    expression: np.ndarray,
    split: np.ndarray,
    sequences: np.ndarray,
    k: int = 6,
    alphas: tuple[float, ...] = DEFAULT_CIS_ALPHAS,
    proximal: tuple[int, ...] = (),
) -> BaselineFit:
    """Per condition, ridge regression of expression on promoter k-mer counts across genes.

    Features are counts of the k-mers with reverse complements merged (2080 for k = 6), over the
    whole promoter and, for each length in ``proximal``, over that many bases next to the ORF start
    (the features of a model with `model.sequence.kmer_proximal`). Each condition is one regression
    over the genes with a train pair in it (all training genes under a held-out-gene split, a random
    subset under random pairs); its intercept is the condition's train mean. ``alphas`` are relative
    to the mean squared norm of a centred count vector. A held-out condition gets the global train mean.
    """
    _check_matrices(expression, split)
    if sequences.shape[0] != expression.shape[0]:
        raise DeepRegError(f"sequences has {sequences.shape[0]} genes, expression has {expression.shape[0]}")
    windows = [sequences, *(sequences[:, -int(width):] for width in proximal)]
    counts = np.hstack([kmer_counts(window, k) for window in windows]).astype(np.float64)
    train = observed_mask(expression, split, TRAIN)
    paths, absolute_alphas = masked_ridge_predictions(counts, expression.T, train.T, alphas)
    transposed = {alpha: prediction.T for alpha, prediction in paths.items()}
    return _select_on_validation(transposed, "alpha", expression, split, absolute=absolute_alphas)


def fit_predict_cis_kmer_ridge(
    expression: np.ndarray,
    split: np.ndarray,
    sequences: np.ndarray,
    k: int = 6,
    alphas: tuple[float, ...] = DEFAULT_CIS_ALPHAS,
) -> np.ndarray:
    """Cis-only ridge on promoter k-mer counts; see :func:`fit_cis_kmer_ridge`."""
    return fit_cis_kmer_ridge(expression, split, sequences, k, alphas).predictions


def masked_ridge_predictions(
    design: np.ndarray,
    targets: np.ndarray,
    observed: np.ndarray,
    alphas: tuple[float, ...],
    tol: float = 1e-6,
    max_iter: int = 500,
) -> tuple[dict, dict]:
    """Many ridge regressions on one design, each task seeing its own subset of samples.

    ``design`` is n x p (samples x features), ``targets`` T x n and ``observed`` T x n: task t
    regresses ``targets[t, observed[t]]`` on ``design[observed[t]]`` with its own intercept taken as
    its observed mean (exact when the masks agree, as under held-out genes or conditions). Returns
    a dict from each relative alpha in ``alphas`` to T x n predictions for every sample, and a dict
    from each relative alpha to the absolute alpha it stands for (relative alphas are multiples of
    the mean squared norm of a centred design row).

    Why this is fast: with the design rotated onto the principal axes of its observed rows, every
    task's normal matrix is close to the same diagonal matrix (exactly so when the masks agree), so
    conjugate gradients preconditioned by that diagonal need only a handful of iterations, each two
    T x n x k matrix products for all tasks at once; no per-task Gram matrix or solve is formed.
    Alphas are visited from strong to weak, each warm-started from the previous solution.
    """
    observed = observed & np.isfinite(targets)
    sample_weight = observed.mean(axis=0)
    rotated, eigenvalues, scale = _principal_design(design, sample_weight)
    task_counts = observed.sum(axis=1)
    global_mean = targets[observed].mean() if observed.any() else 0.0
    intercepts = _masked_mean(targets, observed, axis=1, fallback=global_mean)
    residuals = np.where(observed, targets - intercepts[:, None], 0.0)
    right_hand_side = residuals @ rotated
    eigenvalue_share = task_counts / max(sample_weight.sum(), 1e-12)
    observed_weights = observed.astype(np.float64)
    coefficients = np.zeros((targets.shape[0], rotated.shape[1]))
    paths, absolute_alphas = {}, {}
    for relative_alpha in sorted(alphas, reverse=True):
        alpha = float(relative_alpha) * scale
        preconditioner = 1.0 / (eigenvalue_share[:, None] * eigenvalues[None, :] + alpha)
        normal_matrices = _masked_normal_matrices(rotated, observed_weights, alpha)
        coefficients = _batched_conjugate_gradients(
            normal_matrices, right_hand_side, preconditioner, coefficients, tol, max_iter
        )
        paths[float(relative_alpha)] = intercepts[:, None] + coefficients @ rotated.T
        absolute_alphas[float(relative_alpha)] = alpha
    return paths, absolute_alphas


def _masked_normal_matrices(rotated: np.ndarray, observed_weights: np.ndarray, alpha: float):
    """The map B -> rows (D^T M_t D + alpha I) b_t for every task t, without forming any D^T M_t D."""

    def apply(coefficients: np.ndarray) -> np.ndarray:
        return ((coefficients @ rotated.T) * observed_weights) @ rotated + alpha * coefficients

    return apply


def _principal_design(design: np.ndarray, sample_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre the design on its weighted rows and rotate it onto their principal axes.

    Returns the n x k rotated design (k = numerical rank of the weighted rows), the weighted
    eigenvalues of each axis, and the mean squared norm of a centred weighted row (the alpha scale).
    Axes carrying no weight cannot be learned from any task, so ridge sets them to zero: dropping
    them changes nothing.
    """
    total_weight = max(sample_weight.sum(), 1e-12)
    centred = design - (sample_weight @ design) / total_weight
    weighted = centred * np.sqrt(sample_weight)[:, None]
    if design.shape[1] <= design.shape[0]:
        eigenvalues, axes = np.linalg.eigh(weighted.T @ weighted)
    else:
        eigenvalues, axes = _eigh_via_samples(weighted)
    keep = eigenvalues > 1e-10 * max(eigenvalues.max(), 1e-300)
    scale = float(eigenvalues.sum() / total_weight) or 1.0
    return centred @ axes[:, keep], eigenvalues[keep], scale


def _eigh_via_samples(weighted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of X^T X from the smaller n x n matrix X X^T when there are more features than samples."""
    eigenvalues, sample_axes = np.linalg.eigh(weighted @ weighted.T)
    positive = eigenvalues > 1e-10 * max(eigenvalues.max(), 1e-300)
    feature_axes = weighted.T @ sample_axes[:, positive] / np.sqrt(eigenvalues[positive])
    return eigenvalues[positive], feature_axes


def _batched_conjugate_gradients(
    apply_matrix, right_hand_side: np.ndarray, preconditioner: np.ndarray, start: np.ndarray, tol: float, max_iter: int
) -> np.ndarray:
    """Solve A_t x_t = b_t for every row t at once by preconditioned conjugate gradients.

    ``apply_matrix`` maps a T x k block of vectors to their T x k images; ``preconditioner`` is the
    T x k diagonal of an approximate inverse. Rows stop moving once their residual is below ``tol``
    times the norm of their right-hand side.
    """
    solution = start.copy()
    residual = right_hand_side - apply_matrix(solution)
    target_norm = tol * np.linalg.norm(right_hand_side, axis=1)
    preconditioned = preconditioner * residual
    direction = preconditioned.copy()
    residual_dot = np.einsum("ij,ij->i", residual, preconditioned)
    for _ in range(max_iter):
        active = np.linalg.norm(residual, axis=1) > target_norm
        if not active.any():
            break
        image = apply_matrix(direction)
        curvature = np.einsum("ij,ij->i", direction, image)
        step = np.divide(residual_dot, curvature, out=np.zeros_like(curvature), where=active & (curvature > 0))
        solution += step[:, None] * direction
        residual -= step[:, None] * image
        preconditioned = preconditioner * residual
        new_residual_dot = np.einsum("ij,ij->i", residual, preconditioned)
        momentum = np.divide(new_residual_dot, residual_dot, out=np.zeros_like(residual_dot), where=residual_dot > 0)
        direction = preconditioned + momentum[:, None] * direction
        residual_dot = new_residual_dot
    return solution


# ----------------------------------------------------------------------------------------------
# promoter k-mer counts


def kmer_counts(sequences: np.ndarray, k: int = 6) -> np.ndarray:
    """G x K counts of each k-mer and its reverse complement together (K = 2080 for k = 6).

    Windows touching an all-zero position (N or padding) are not counted. Column j counts the
    canonical k-mer ``canonical_kmers(k)[j]`` (the smaller base-4 index of a k-mer and its reverse
    complement, with A, C, G, T = 0, 1, 2, 3).
    """
    sequences = np.asarray(sequences)
    n_genes, length, _ = sequences.shape
    canonical, column_of = _canonical_kmer_columns(k)
    n_windows = length - k + 1
    if n_windows <= 0:
        return np.zeros((n_genes, canonical.size), dtype=np.float32)
    codes = sequences.argmax(axis=2).astype(np.int64)
    known = sequences.any(axis=2)
    kmer_index = np.zeros((n_genes, n_windows), dtype=np.int64)
    window_known = np.ones((n_genes, n_windows), dtype=bool)
    for offset in range(k):
        kmer_index = kmer_index * 4 + codes[:, offset : offset + n_windows]
        window_known &= known[:, offset : offset + n_windows]
    flat = (np.arange(n_genes)[:, None] * canonical.size + column_of[kmer_index])[window_known]
    counts = np.bincount(flat, minlength=n_genes * canonical.size)
    return counts.reshape(n_genes, canonical.size).astype(np.float32)


def canonical_kmers(k: int = 6) -> np.ndarray:
    """Base-4 indices of the canonical k-mers, in the column order of :func:`kmer_counts`."""
    return _canonical_kmer_columns(k)[0]


def _canonical_kmer_columns(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted canonical k-mer indices, and for each of the 4**k k-mers its canonical column."""
    index = np.arange(4**k, dtype=np.int64)
    powers = 4 ** np.arange(k - 1, -1, -1, dtype=np.int64)
    digits = (index[:, None] // powers[None, :]) % 4
    reverse_complement = ((3 - digits[:, ::-1]) * powers[None, :]).sum(axis=1)
    canonical_index = np.minimum(index, reverse_complement)
    canonical = np.unique(canonical_index)
    return canonical, np.searchsorted(canonical, canonical_index)


# ----------------------------------------------------------------------------------------------
# choosing hyperparameters and scoring


def _select_on_validation(
    fits: dict, name: str, expression: np.ndarray, split: np.ndarray, absolute: dict | None = None
) -> BaselineFit:
    """The candidate with the lowest validation MSE (no validation needed for a single candidate)."""
    if len(fits) == 1:
        (value, predictions), = fits.items()
        return BaselineFit(predictions, _hyperparameter(name, value, absolute))
    errors = {value: validation_mse(predictions, expression, split) for value, predictions in fits.items()}
    best = min(errors, key=errors.get)
    return BaselineFit(fits[best], _hyperparameter(name, best, absolute), errors)


def _hyperparameter(name: str, value, absolute: dict | None) -> dict:
    chosen = {name: value}
    if absolute is not None:
        chosen[f"absolute_{name}"] = absolute[value]
    return chosen


def score(
    predictions: np.ndarray,
    expression: np.ndarray,
    split: np.ndarray,
    which: int = TEST,
    targets_mask: np.ndarray | None = None,
    thresholds: tuple[float, float] = DEFAULT_THRESHOLDS,
) -> dict:
    """MSE, Pearson r, Spearman rho, n and 3-class accuracy on the observed pairs of split ``which``.

    ``targets_mask`` (length G, boolean) keeps only those genes' pairs, e.g. to leave out the
    regulator genes, whose own expression is an input. Classes: down (<= thresholds[0]), up
    (>= thresholds[1]), baseline otherwise. A correlation is NaN when either side is constant.
    """
    _check_matrices(expression, split)
    mask = observed_mask(expression, split, which)
    if targets_mask is not None:
        mask &= np.asarray(targets_mask, dtype=bool)[:, None]
    truth = expression[mask].astype(np.float64)
    predicted = np.asarray(predictions, dtype=np.float64)[mask]
    if truth.size == 0:
        return {"mse": np.nan, "r": np.nan, "spearman": np.nan, "accuracy": np.nan, "n": 0}
    return {
        "mse": float(np.mean((predicted - truth) ** 2)),
        "r": _pearson(predicted, truth),
        "spearman": _pearson(_ranks(predicted), _ranks(truth)),
        "accuracy": float(np.mean(expression_classes(predicted, thresholds) == expression_classes(truth, thresholds))),
        "n": int(truth.size),
    }


def expression_classes(values: np.ndarray, thresholds: tuple[float, float] = DEFAULT_THRESHOLDS) -> np.ndarray:
    """-1 = down (<= low threshold), 1 = up (>= high threshold), 0 = baseline."""
    low, high = thresholds
    return np.where(values <= low, -1, np.where(values >= high, 1, 0)).astype(np.int8)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    x = x - x.mean()
    y = y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else float("nan")


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), as Spearman's rho needs."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    mean_rank = (starts + ends - 1) / 2.0
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def fit_baseline(
    name: str,
    expression: np.ndarray,
    split: np.ndarray,
    regulators: np.ndarray | None = None,
    sequences: np.ndarray | None = None,
) -> BaselineFit:
    """Fit one baseline by name (see :data:`BASELINE_NAMES`) on the train pairs."""
    if name == "zero":
        return BaselineFit(fit_predict_zero(expression, split))
    if name == "gene_mean":
        return BaselineFit(fit_predict_gene_mean(expression, split))
    if name == "condition_mean":
        return BaselineFit(fit_predict_condition_mean(expression, split))
    if name == "additive":
        return fit_additive(expression, split)
    if name == "low_rank_completion":
        return fit_low_rank_completion(expression, split)
    if name == "trans_ridge":
        return fit_trans_ridge(expression, split, regulators)
    if name == "cis_kmer_ridge":
        return fit_cis_kmer_ridge(expression, split, sequences)
    if name == "cis_kmer_proximal_ridge":
        return fit_cis_kmer_ridge(expression, split, sequences, proximal=PROXIMAL_WINDOWS)
    raise DeepRegError(f"unknown baseline {name!r} (one of {', '.join(BASELINE_NAMES)})")


BASELINE_NAMES = ("zero", "gene_mean", "condition_mean", "additive", "low_rank_completion", "trans_ridge",
                  "cis_kmer_ridge", "cis_kmer_proximal_ridge")
_NEEDS_REGULATORS = ("trans_ridge",)
_NEEDS_SEQUENCES = ("cis_kmer_ridge", "cis_kmer_proximal_ridge")


def fit_all_baselines(
    expression: np.ndarray,
    split: np.ndarray,
    regulators: np.ndarray | None,
    sequences: np.ndarray | None,
) -> dict[str, tuple[BaselineFit, float]]:
    """Fit every baseline on the train pairs: name -> (fit, seconds it took).

    The trans ridge is skipped when ``regulators`` is None, the cis ridges when ``sequences`` is None.
    """
    fitted = {}
    for name in BASELINE_NAMES:
        if (name in _NEEDS_REGULATORS and regulators is None) or (name in _NEEDS_SEQUENCES and sequences is None):
            continue
        started = time.perf_counter()
        result = fit_baseline(name, expression, split, regulators, sequences)
        fitted[name] = (result, time.perf_counter() - started)
    return fitted


def score_baselines(
    fitted: dict[str, tuple[BaselineFit, float]],
    expression: np.ndarray,
    split: np.ndarray,
    which: int = TEST,
    targets_mask: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row of scores on split ``which`` per fitted baseline (see :func:`fit_all_baselines`)."""
    rows = []
    for name, (result, seconds) in fitted.items():
        metrics = score(result.predictions, expression, split, which, targets_mask)
        rows.append({"name": name, **metrics, "hyperparameter": _describe(result.hyperparameter), "seconds": seconds})
    return pd.DataFrame(rows, columns=["name", "mse", "r", "spearman", "accuracy", "n", "hyperparameter", "seconds"])


def run_all_baselines(
    expression: np.ndarray,
    split: np.ndarray,
    regulators: np.ndarray | None,
    sequences: np.ndarray | None,
    which: int = TEST,
    targets_mask: np.ndarray | None = None,
) -> pd.DataFrame:
    """Fit every baseline on the train pairs and score it on split ``which``: one row per baseline."""
    fitted = fit_all_baselines(expression, split, regulators, sequences)
    return score_baselines(fitted, expression, split, which, targets_mask)


def _describe(hyperparameter: dict) -> str:
    return ", ".join(f"{key}={value:g}" for key, value in hyperparameter.items())
