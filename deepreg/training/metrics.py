"""Scores a biologist reads: MSE and Pearson r for log-ratios; accuracy and confusion for 3 classes."""

from __future__ import annotations

import numpy as np


def pearson_r(predicted: np.ndarray, observed: np.ndarray) -> float:
    predicted = np.asarray(predicted, dtype=np.float64)
    observed = np.asarray(observed, dtype=np.float64)
    if predicted.size < 2 or predicted.std() == 0 or observed.std() == 0:
        return 0.0
    return float(np.corrcoef(predicted, observed)[0, 1])


def regression_scores(predicted: np.ndarray, observed: np.ndarray) -> dict[str, float]:
    """MSE and Pearson r over paired vectors (already restricted to scored pairs)."""
    return {"mse": float(np.mean((predicted - observed) ** 2)) if observed.size else float("nan"),
            "pearson_r": pearson_r(predicted, observed)}


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
