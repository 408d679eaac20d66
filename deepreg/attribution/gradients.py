"""Gradient x input for DeepREG models: the same engine as DeepLIFT with plain gradients.

Gradient x input is what the DeepREG paper ranked regulators by (USV1, DAL80, XBP1, ...). It is the
DeepLIFT computation with every nonlinearity's multiplier replaced by its gradient at the actual input
and the reference replaced by zero, so `deeplift.py`'s batched, factored engine serves both.
"""

from __future__ import annotations

from deepreg.attribution.deeplift import regulator_scores, sequence_scores


def regulator_gradient_x_input(model, sequences, regulators, **kwargs):
    """Gradient of the output with respect to each regulator input, times the input (G x C x R, or sums)."""
    kwargs.pop("reference", None)
    return regulator_scores(model, sequences, regulators, rule="gradient", **kwargs)


def sequence_gradient_x_input(model, sequences, regulators, **kwargs):
    """Gradient with respect to each promoter base, times the one-hot input (`SequenceScores`)."""
    kwargs.pop("references", None)
    return sequence_scores(model, sequences, regulators, rule="gradient", **kwargs)
