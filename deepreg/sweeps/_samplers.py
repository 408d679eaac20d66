"""The Optuna sampler and pruner a study's spec asks for, and the study's trial budget.

Every process of a study builds these from the stored spec (`_optuna._Session`), so workers agree
on the grid's order and the pruner's rungs; only the sampler's seed differs between processes.
"""

from __future__ import annotations

import warnings

import optuna

from deepreg.sweeps._space import same
from deepreg.sweeps._spec import StudySpec


def make_sampler(spec: StudySpec, seed: int | None) -> optuna.samplers.BaseSampler:
    kind = spec.sampler.type
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if kind == "grid":
            return _BaselineFirstGrid(spec)
        if kind == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.sampler.startup_trials,
                                          multivariate=True, group=True, constant_liar=True)


class _BaselineFirstGrid(optuna.samplers.GridSampler):
    """A grid whose point 0 is the baseline (so trial 0 evaluates it), the same in every worker.

    Optuna maps grid ids to points through a list shuffled by the seed, so every worker must use
    the spec's seed for it; the choice among unvisited points is then reseeded per process so that
    workers starting together do not pick the same point.
    """

    def __init__(self, spec: StudySpec):
        super().__init__(spec.space.grid(spec.source), seed=spec.sampler.seed)
        params, _ = spec.space.baseline(spec.base.to_dict()) if spec.baseline else (None, "")
        grids = getattr(self, "_all_grids", None)
        names = getattr(self, "_param_names", None)
        if params is not None and isinstance(grids, list) and names is not None:
            point = tuple(params.get(name) for name in names)
            for index, candidate in enumerate(grids):
                if all(same(a, b) for a, b in zip(candidate, point)):
                    grids.insert(0, grids.pop(index))
                    break
        self.reseed_rng()


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    pruner = spec.pruner
    if pruner.type == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.startup_trials, n_warmup_steps=pruner.warmup_epochs)
    if pruner.type == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=pruner.min_epochs, max_resource=spec.epochs,
                                              reduction_factor=pruner.reduction_factor)
    if pruner.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=pruner.min_epochs,
                                                      reduction_factor=pruner.reduction_factor)
    return optuna.pruners.NopPruner()


def trial_budget(spec: StudySpec) -> int | None:
    """The trials the whole study may count: the spec's budget, else the grid's size; None for no limit."""
    if spec.budget.trials is not None:
        return spec.budget.trials
    return spec.space.grid_size(spec.source) if spec.sampler.type == "grid" else None
