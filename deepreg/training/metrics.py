"""Scores a biologist reads: MSE and Pearson r for log-ratios; accuracy and confusion for 3 classes."""

from __future__ import annotations

import numpy as np


def pearson_r(predicted: np.ndarray, observed: np.ndarray, undefined: float = 0.0) -> float:
    """Pearson r of paired vectors; `undefined` where r has no value (under two pairs, or a side constant).

    A trained network scores 0.0 there: a constant prediction explains nothing, and a sweep's
    objective must be a number. The baselines' tables ask for NaN, so that a constant predictor
    (the zero baseline) has no r and is never the baseline to beat.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    observed = np.asarray(observed, dtype=np.float64)
    if predicted.size < 2 or np.ptp(predicted) == 0 or np.ptp(observed) == 0:
        return float(undefined)
    return float(np.corrcoef(predicted, observed)[0, 1])


def spearman_rho(predicted: np.ndarray, observed: np.ndarray, undefined: float = 0.0) -> float:
    """Spearman's rho: Pearson r of the average ranks (see `pearson_r` for `undefined`)."""
    return pearson_r(average_ranks(predicted), average_ranks(observed), undefined)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1, ties sharing their mean rank, as Spearman's rho needs."""
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    ranks = np.empty(values.size)
    ranks[order] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    return ranks


def mean_squared_error(predicted: np.ndarray, observed: np.ndarray) -> float:
    """Mean squared error of paired vectors; NaN when there are none."""
    return float(np.mean((predicted - observed) ** 2)) if np.size(observed) else float("nan")


def regression_scores(predicted: np.ndarray, observed: np.ndarray) -> dict[str, float]:
    """MSE and Pearson r over paired vectors (already restricted to scored pairs)."""
    return {"mse": mean_squared_error(predicted, observed), "pearson_r": pearson_r(predicted, observed)}


def confusion_matrix(predicted_class: np.ndarray, observed_class: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """Counts with rows = observed class, columns = predicted class."""
    index = observed_class.astype(np.int64) * n_classes + predicted_class.astype(np.int64)
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_scores(probabilities: np.ndarray, observed_class: np.ndarray) -> dict:
    """Accuracy, cross-entropy and the confusion matrix (as % of pairs, rows = observed)."""
    predicted_class = probabilities.argmax(axis=-1)
    chosen = probabilities[np.arange(len(observed_class)), observed_class.astype(np.int64)]
    confusion = confusion_matrix(predicted_class, observed_class)
    return {
        "accuracy": float((predicted_class == observed_class).mean()) if observed_class.size else float("nan"),
        "cross_entropy": float(-np.mean(np.log(np.clip(chosen, 1e-7, 1.0)))),
        "confusion_percent": (100.0 * confusion / max(1, confusion.sum())).round(2).tolist(),
    }
