"""The network-free predictors: zero, gene and condition means, additive, low-rank completion, ridges.

Each ``fit_X`` returns a :class:`~deepreg.baselines.fits.BaselineFit` holding a G x C prediction for
every pair, and each ``fit_predict_X`` returns that array alone (see `deepreg.baselines` for the
inputs each one reads).
"""

from __future__ import annotations

import numpy as np

from deepreg.baselines.fits import (BaselineFit, check_matrices, masked_mean, observed_mask, select_on_validation,
                                    train_values)
from deepreg.baselines.kmers import kmer_counts
from deepreg.baselines.ridge import masked_ridge_predictions
from deepreg.data.splits import TRAIN
from deepreg.errors import DeepRegError

DEFAULT_RANKS = (1, 2, 5, 10, 20, 40, 80, 120, 160)
DEFAULT_TRANS_ALPHAS = tuple(10.0 ** np.arange(-2.0, 3.5, 0.5))
DEFAULT_CIS_ALPHAS = tuple(10.0 ** np.arange(-1.0, 4.5, 0.5))
# The proximal window of the k-mer ridge that matches the held-out-genes network's features.
PROXIMAL_WINDOWS = (100, 250, 500)


# ----------------------------------------------------------------------------------------------
# baselines without hyperparameters


def fit_predict_zero(expression: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Predict no change (log2 ratio 0) everywhere."""
    check_matrices(expression, split)
    return np.zeros(expression.shape, dtype=np.float64)


def fit_predict_gene_mean(expression: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Each gene's mean over its train pairs.

    A gene without any train pair (a held-out gene) gets the global train mean, the best constant
    the training data offers for an unseen gene.
    """
    values, train = train_values(expression, split)
    gene_means = masked_mean(values, train, axis=1, fallback=values[train].mean())
    return np.repeat(gene_means[:, None], expression.shape[1], axis=1)


def fit_predict_condition_mean(expression: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Each condition's mean over its train pairs; held-out conditions get the global train mean."""
    values, train = train_values(expression, split)
    condition_means = masked_mean(values, train, axis=0, fallback=values[train].mean())
    return np.repeat(condition_means[None, :], expression.shape[0], axis=0)


def fit_additive(expression: np.ndarray, split: np.ndarray) -> BaselineFit:
    """Least-squares fit of global mean + gene effect + condition effect on the train pairs.

    A gene or condition with no train pair keeps a zero effect, so a held-out gene is predicted by
    global mean + condition effect, a held-out condition by global mean + gene effect.
    """
    values, train = train_values(expression, split)
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
    values, train = train_values(expression, split)
    max_rank = min(expression.shape) - 1
    low_rank = np.zeros_like(values)
    effects = None
    fits = {}
    for rank in sorted({min(int(r), max_rank) for r in ranks}):
        effects, low_rank = _additive_plus_low_rank(values, train, rank, effects, low_rank, tol, max_iter)
        fits[rank] = _additive_matrix(effects) + low_rank
    return select_on_validation(fits, "rank", expression, split)


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
    check_matrices(expression, split)
    regulators = np.nan_to_num(np.asarray(regulators, dtype=np.float64))
    if regulators.shape[0] != expression.shape[1]:
        raise DeepRegError(
            f"regulators has {regulators.shape[0]} rows, expected one per condition ({expression.shape[1]})"
        )
    train = observed_mask(expression, split, TRAIN)
    paths, absolute_alphas = masked_ridge_predictions(regulators, expression, train, alphas)
    return select_on_validation(paths, "alpha", expression, split, absolute=absolute_alphas)


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
    check_matrices(expression, split)
    if sequences.shape[0] != expression.shape[0]:
        raise DeepRegError(f"sequences has {sequences.shape[0]} genes, expression has {expression.shape[0]}")
    windows = [sequences, *(sequences[:, -int(width):] for width in proximal)]
    counts = np.hstack([kmer_counts(window, k) for window in windows]).astype(np.float64)
    train = observed_mask(expression, split, TRAIN)
    paths, absolute_alphas = masked_ridge_predictions(counts, expression.T, train.T, alphas)
    transposed = {alpha: prediction.T for alpha, prediction in paths.items()}
    return select_on_validation(transposed, "alpha", expression, split, absolute=absolute_alphas)


def fit_predict_cis_kmer_ridge(
    expression: np.ndarray,
    split: np.ndarray,
    sequences: np.ndarray,
    k: int = 6,
    alphas: tuple[float, ...] = DEFAULT_CIS_ALPHAS,
) -> np.ndarray:
    """Cis-only ridge on promoter k-mer counts; see :func:`fit_cis_kmer_ridge`."""
    return fit_cis_kmer_ridge(expression, split, sequences, k, alphas).predictions
