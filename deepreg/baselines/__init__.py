"""Baselines that need no network, fitted and scored on the same pairs as the network.

Every baseline works on the factored data (never a pairs table):

- ``expression``: G x C log2 ratios (genes x conditions), NaN = missing;
- ``split``: G x C int8 with the codes of `deepreg.data.splits` (TRAIN, VALIDATION, TEST, UNUSED);
- ``regulators``: C x R expression of the R regulators in each condition;
- ``sequences``: G x L x 4 one-hot promoters (all-zero rows = N or padding).

Only observed train pairs enter a fit; validation pairs only choose a hyperparameter; test pairs
are never read (`fits`). The modules:

- `predictors`: the predictors (zero, gene and condition means, additive, low-rank completion,
  trans ridge on the regulators, cis ridges on promoter k-mers), each ``fit_X`` returning a
  `BaselineFit`;
- `ridge`: the one solver both ridges share, many masked ridge regressions on one design;
- `kmers`: promoter k-mer counts, the cis ridges' features;
- `runner`: fit by name (`BASELINE_NAMES`) and score through `deepreg.training.metrics`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from deepreg.baselines.fits import BaselineFit, observed_mask, validation_mse
from deepreg.baselines.kmers import canonical_kmers, kmer_counts
from deepreg.baselines.predictors import (DEFAULT_CIS_ALPHAS, DEFAULT_RANKS, DEFAULT_TRANS_ALPHAS, PROXIMAL_WINDOWS,
                                          fit_additive, fit_cis_kmer_ridge, fit_low_rank_completion,
                                          fit_predict_additive, fit_predict_cis_kmer_ridge,
                                          fit_predict_condition_mean, fit_predict_gene_mean,
                                          fit_predict_low_rank_completion, fit_predict_trans_ridge, fit_predict_zero,
                                          fit_trans_ridge)
from deepreg.baselines.ridge import masked_ridge_predictions
from deepreg.baselines.runner import (BASELINE_NAMES, DEFAULT_THRESHOLDS, expression_classes, fit_all_baselines,
                                      fit_baseline, run_all_baselines, score, score_baselines)
from deepreg.data.splits import TEST, TRAIN, UNUSED, VALIDATION
from deepreg.training import metrics

__all__ = [
    "BASELINE_NAMES", "BaselineFit", "DEFAULT_CIS_ALPHAS", "DEFAULT_RANKS", "DEFAULT_THRESHOLDS",
    "DEFAULT_TRANS_ALPHAS", "PROXIMAL_WINDOWS", "canonical_kmers", "code_fingerprint", "expression_classes",
    "fit_additive", "fit_all_baselines", "fit_baseline", "fit_cis_kmer_ridge", "fit_low_rank_completion",
    "fit_predict_additive", "fit_predict_cis_kmer_ridge", "fit_predict_condition_mean", "fit_predict_gene_mean",
    "fit_predict_low_rank_completion", "fit_predict_trans_ridge", "fit_predict_zero", "fit_trans_ridge",
    "kmer_counts", "masked_ridge_predictions", "observed_mask", "run_all_baselines", "score", "score_baselines",
    "validation_mse", "TRAIN", "VALIDATION", "TEST", "UNUSED",
]


def code_fingerprint() -> str:
    """sha256 of this package's source and of the scorer's: fitted and scored baselines kept in a cache
    are valid for one version of both."""
    digest = hashlib.sha256()
    for path in [*sorted(Path(__file__).parent.glob("*.py")), Path(metrics.__file__)]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
