"""Fit baselines by name and score them on a split: one row per baseline.

Scores go through `deepreg.training.metrics`, the network's scorer; a baseline's table keeps NaN
where a correlation has no value (a constant predictor), so it never counts as the baseline to beat.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from deepreg.baselines.fits import BaselineFit, check_matrices, observed_mask
from deepreg.baselines.predictors import (PROXIMAL_WINDOWS, fit_additive, fit_cis_kmer_ridge, fit_low_rank_completion,
                                          fit_predict_condition_mean, fit_predict_gene_mean, fit_predict_zero,
                                          fit_trans_ridge)
from deepreg.data.splits import TEST
from deepreg.errors import DeepRegError
from deepreg.training.metrics import mean_squared_error, pearson_r, spearman_rho

DEFAULT_THRESHOLDS = (-0.5, 0.5)


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
    (>= thresholds[1]), baseline otherwise. A correlation is NaN when either side is constant (the
    `undefined` of `deepreg.training.metrics.pearson_r`): such a predictor has no r, so it is never the best.
    """
    check_matrices(expression, split)
    mask = observed_mask(expression, split, which)
    if targets_mask is not None:
        mask &= np.asarray(targets_mask, dtype=bool)[:, None]
    truth = expression[mask].astype(np.float64)
    predicted = np.asarray(predictions, dtype=np.float64)[mask]
    if truth.size == 0:
        return {"mse": np.nan, "r": np.nan, "spearman": np.nan, "accuracy": np.nan, "n": 0}
    return {
        "mse": mean_squared_error(predicted, truth),
        "r": pearson_r(predicted, truth, undefined=np.nan),
        "spearman": spearman_rho(predicted, truth, undefined=np.nan),
        "accuracy": float(np.mean(expression_classes(predicted, thresholds) == expression_classes(truth, thresholds))),
        "n": int(truth.size),
    }


def expression_classes(values: np.ndarray, thresholds: tuple[float, float] = DEFAULT_THRESHOLDS) -> np.ndarray:
    """-1 = down (<= low threshold), 1 = up (>= high threshold), 0 = baseline."""
    low, high = thresholds
    return np.where(values <= low, -1, np.where(values >= high, 1, 0)).astype(np.int8)


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
