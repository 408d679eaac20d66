"""What every baseline shares: the fit it returns, the pairs it may read, and choosing on validation.

Only observed train pairs (split == TRAIN) enter a fit; validation pairs (split == VALIDATION) only
choose a hyperparameter (a rank, a ridge alpha) among candidates, and are not needed when a single
candidate is given. Test pairs are never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepreg.data.splits import TRAIN, VALIDATION
from deepreg.errors import DeepRegError


@dataclass
class BaselineFit:
    """Predictions for every (gene, condition) pair and the hyperparameter chosen on validation."""

    predictions: np.ndarray
    hyperparameter: dict = field(default_factory=dict)
    validation_mse: dict = field(default_factory=dict)


def observed_mask(expression: np.ndarray, split: np.ndarray, which: int) -> np.ndarray:
    """Pairs assigned to split ``which`` whose expression value is present."""
    return (np.asarray(split) == which) & np.isfinite(expression)


def train_values(expression: np.ndarray, split: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 matrix with zeros outside observed train pairs, and the mask of those pairs."""
    check_matrices(expression, split)
    train = observed_mask(expression, split, TRAIN)
    if not train.any():
        raise DeepRegError("split has no observed training pair (split == 0 with a finite value)")
    return np.where(train, expression, 0.0).astype(np.float64), train


def check_matrices(expression: np.ndarray, split: np.ndarray) -> None:
    if expression.ndim != 2 or expression.shape != np.shape(split):
        raise DeepRegError(
            f"expression {expression.shape} and split {np.shape(split)} must be the same G x C shape"
        )


def masked_mean(values: np.ndarray, mask: np.ndarray, axis: int, fallback: float) -> np.ndarray:
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


def select_on_validation(
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
