"""One ridge solver for many regressions on one design matrix, each task with its own observed samples.

The trans ridge (one regression per gene over conditions) and the cis k-mer ridges (one per condition
over genes) both call `masked_ridge_predictions`: genes see different train conditions under a
random-pair split, so each task has its own mask, and the tasks are solved together by
preconditioned conjugate gradients in the principal axes of the design, so that no per-task Gram
matrix is ever formed.
"""

from __future__ import annotations

import numpy as np

from deepreg.baselines.fits import masked_mean


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
    intercepts = masked_mean(targets, observed, axis=1, fallback=global_mean)
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
