"""Baseline-then-refine (the notebook's section 9): stages of small studies from the best config so far.

For every stage `i` (say `depth`) the study `NAME.i-depth` starts from the incumbent: its base is
the incumbent config, the incumbent's own values are its trial 0 (added to the stage's choices when
missing), and its other trials vary only the stage's parameters. After the stage, the best trial
replaces the incumbent only if it beats the incumbent's value by more than the noise: `noise.factor`
x the standard deviation of the incumbent's objective over `noise.seeds` training seeds (trial 0
plus a small grid study `NAME.noise-k` over `training.seed`, run only when a change is in question
and once per incumbent). Then the incumbent's training and validation errors are diagnosed:
underfitting (both above `diagnosis.target`), overfitting (train below `overfit_ratio` x validation)
or on target, with the lever to pull next.

Every trial run carries the lineage: `deepreg.refine`, `deepreg.stage`, `deepreg.stage_index` and
`deepreg.parent_config` (the MLflow run of the incumbent it started from). Re-running the spec
resumes: finished stages are read back from the storage and reach the same decisions.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Callable

from optuna.trial import FrozenTrial, TrialState

from deepreg._config import lookup_dotted
from deepreg.sweeps._attrs import RUN_ATTR
from deepreg.sweeps._console import echo
from deepreg.sweeps._optuna import run_sweep
from deepreg.sweeps._space import same
from deepreg.sweeps._spec import Diagnosis, Stage, StudySpec


@dataclasses.dataclass
class Incumbent:
    config: Any  # RunConfig
    value: float | None = None
    run_id: str | None = None
    where: str = "baseline"
    generation: int = 0
    train_error: float | None = None
    val_error: float | None = None
    error_metric: str = ""


@dataclasses.dataclass
class StageReport:
    stage: str
    study: str
    incumbent_value: float | None
    best_value: float | None
    best_trial: int | None
    improvement: float | None
    threshold: float | None
    kept: bool
    diagnosis: str
    advice: str
    incumbent_run_id: str | None


@dataclasses.dataclass
class RefineOutcome:
    name: str
    stages: list[StageReport]
    incumbent: Incumbent


def diagnose(train_error: float | None, val_error: float | None, diagnosis: Diagnosis,
             metric: str = "mse") -> tuple[str, str]:
    """The notebook's reading of train vs validation error: (verdict, the lever to pull next)."""
    if train_error is None or val_error is None or not all(map(math.isfinite, (train_error, val_error))):
        return "unknown", "no training/validation error recorded for the incumbent"
    numbers = f"train {metric} {train_error:.4g}, validation {val_error:.4g}"
    if train_error < diagnosis.overfit_ratio * val_error:
        return "overfitting", (f"{numbers}: train far below validation; regularise (l1/l2, dropout), "
                               "shrink the model or add data")
    target = diagnosis.target
    if target is not None and train_error > target and val_error > target:
        return "underfitting", (f"{numbers}: both above the target {target:g}; add capacity (filters, layers, "
                                "a wider head) or look at the worst-predicted pairs for data problems")
    if target is not None and val_error <= target:
        return "on target", f"{numbers}: validation at or below the target {target:g}"
    if target is None:
        return "balanced", (f"{numbers}: train close to validation; if both are too high, this is underfitting "
                            "(add capacity); set diagnosis.target to decide")
    return "balanced", f"{numbers}: train close to validation, validation above the target {target:g}"


def run_refine(spec: StudySpec, *, storage: str, tracking_uri: str, experiment: str = "deepreg", callbacks=(),
               out: Callable[[str], None] = echo, verbose: int = 0) -> RefineOutcome:
    """Run (or resume) every stage of a refine spec in order; return each stage's decision."""
    incumbent = Incumbent(config=spec.base)
    noise: dict[int, float] = {}
    reports: list[StageReport] = []
    for index, stage in enumerate(spec.stages, start=1):
        name = f"{spec.name}.{index}-{stage.name}"
        stage_spec = spec.for_stage(_with_incumbent(stage, incumbent.config), name, base=incumbent.config)
        lineage = {"deepreg.refine": spec.name, "deepreg.stage": stage.name, "deepreg.stage_index": str(index),
                   "deepreg.parent_config": incumbent.run_id or "base", "deepreg.parent_where": incumbent.where}
        out(f"== stage {index} of {len(spec.stages)}: {stage.name} (study {name}), from the {incumbent.where}")
        outcome = run_sweep(stage_spec, storage=storage, tracking_uri=tracking_uri, experiment=experiment,
                            lineage=lineage, callbacks=callbacks, out=out, verbose=verbose)
        study = outcome.study
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        own = [t for t in complete if t.user_attrs.get("deepreg.baseline")]
        if own:
            first = min(own, key=lambda t: t.number)
            incumbent = dataclasses.replace(incumbent, value=first.value, run_id=first.user_attrs.get(RUN_ATTR),
                                            where=f"{name}#{first.number}", **_errors(first))
        best = outcome.best
        report = StageReport(stage=stage.name, study=name, incumbent_value=incumbent.value,
                             best_value=best.value if best else None, best_trial=best.number if best else None,
                             improvement=None, threshold=None, kept=False, diagnosis="", advice="",
                             incumbent_run_id=incumbent.run_id)
        if best is not None and not best.user_attrs.get("deepreg.baseline"):
            if incumbent.value is None:
                report.kept, report.improvement, report.threshold = True, None, None
            else:
                report.improvement = spec.objective.improvement(best.value, incumbent.value)
                if report.improvement > 0:
                    if incumbent.generation not in noise:
                        noise[incumbent.generation] = _noise(spec, incumbent, storage=storage,
                                                             tracking_uri=tracking_uri, experiment=experiment,
                                                             callbacks=callbacks, out=out, verbose=verbose)
                    report.threshold = spec.noise.factor * noise[incumbent.generation]
                    report.kept = report.improvement > report.threshold
            if report.kept:
                chosen = stage_spec.space.from_optuna_params(best.params)
                _, overrides = stage_spec.space.resolve(lambda p: chosen[p.name], incumbent.config.to_dict())
                incumbent = Incumbent(config=incumbent.config.with_updates(overrides), value=best.value,
                                      run_id=best.user_attrs.get(RUN_ATTR), where=f"{name}#{best.number}",
                                      generation=incumbent.generation + 1, **_errors(best))
        report.diagnosis, report.advice = diagnose(incumbent.train_error, incumbent.val_error, spec.diagnosis,
                                                   incumbent.error_metric or "error")
        report.incumbent_run_id = incumbent.run_id
        out(_describe(report, spec))
        _record(study, report)
        reports.append(report)
    out(f"refine {spec.name}: final incumbent {incumbent.where}, {spec.objective.label()} "
        f"{_fmt(incumbent.value)}, run {incumbent.run_id}")
    changed = {k: v for k, v in incumbent.config.to_params().items() if spec.base.to_params().get(k) != v}
    out("  changes from the baseline: " + (", ".join(f"{k}={v}" for k, v in changed.items()) or "none"))
    return RefineOutcome(name=spec.name, stages=reports, incumbent=incumbent)


def _with_incumbent(stage: Stage, config) -> Stage:
    """The stage with the incumbent's own values added to its choices (so trial 0 can be the incumbent)."""
    values = config.to_dict()
    raw = dict(stage.space.raw)
    for param in stage.space.params:
        entry = raw[param.name]
        current = lookup_dotted(values, param.name)
        if param.kind == "choices" and not any(same(current, c) for c in param.choices):
            scalars = all(not isinstance(c, (list, dict)) for c in param.choices)
            value = current[0] if scalars and isinstance(current, (list, tuple)) and len(current) == 1 else current
            choices = [_plain(value), *param.choices]
            raw[param.name] = {**entry, "choices": choices} if isinstance(entry, dict) else choices
        elif param.kind == "variant":
            keys = sorted({key for keys in param.variants.values() for key in keys})
            if not any(all(same(lookup_dotted(values, k), v) for k, v in keys_.items()) for keys_ in param.variants.values()):
                variants = {"incumbent": {k: _plain(lookup_dotted(values, k)) for k in keys}, **entry["choices"]}
                raw[param.name] = {**entry, "choices": variants}
    from deepreg.sweeps._space import Space
    from deepreg.training.config import RunConfig
    space = Space.from_mapping(raw, source=f"stage {stage.name}", config_keys=set(RunConfig().to_params()))
    return dataclasses.replace(stage, space=space)


def _noise(spec: StudySpec, incumbent: Incumbent, *, storage: str, tracking_uri: str, experiment: str,
           callbacks, out, verbose: int) -> float:
    """The standard deviation of the incumbent's objective over training seeds."""
    if spec.noise.seeds < 2 or incumbent.value is None:
        return 0.0
    seed = incumbent.config.training.seed
    seeds = [seed + k for k in range(1, spec.noise.seeds)]
    name = f"{spec.name}.noise-{incumbent.generation}"
    raw = {"name": name, "description": f"{spec.name}: seed noise of {incumbent.where}",
           "base": incumbent.config.to_dict(), "space": {"training.seed": {"choices": seeds}},
           "objective": spec.objective.to_dict(), "sampler": {"type": "grid", "seed": 0}, "pruner": {"type": "none"},
           "budget": {"trials": len(seeds)}, "epochs": incumbent.config.training.epochs, "baseline": False,
           "reliability": spec.reliability.to_dict()}
    out(f"-- measuring the seed noise of the incumbent ({len(seeds)} more seeds, study {name})")
    outcome = run_sweep(StudySpec.from_dict(raw, source=name), storage=storage, tracking_uri=tracking_uri,
                        experiment=experiment, lineage={"deepreg.refine": spec.name, "deepreg.stage": "noise",
                                                        "deepreg.parent_config": incumbent.run_id or "base"},
                        callbacks=callbacks, out=out, verbose=verbose)
    values = [t.value for t in outcome.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    values.append(incumbent.value)
    sd = statistics.stdev(values) if len(values) >= 2 else 0.0
    out(f"-- seed noise: sd {sd:.4g} over {len(values)} seeds (values {', '.join(f'{v:.4f}' for v in values)})")
    return sd


def _errors(trial: FrozenTrial) -> dict:
    return {"train_error": trial.user_attrs.get("deepreg.train_error"),
            "val_error": trial.user_attrs.get("deepreg.val_error"),
            "error_metric": trial.user_attrs.get("deepreg.error_metric", "")}


def _record(study, report: StageReport) -> None:
    study.set_user_attr("deepreg.refine.decision", {k: v for k, v in dataclasses.asdict(report).items()})


def _describe(report: StageReport, spec: StudySpec) -> str:
    label = spec.objective.label()
    if report.best_trial is None:
        verdict = "no finished trial; the incumbent stays"
    elif report.improvement is None and not report.kept:
        verdict = f"the incumbent stays the best ({label} {_fmt(report.incumbent_value)})"
    elif report.kept:
        verdict = (f"keep trial {report.best_trial}: {label} {_fmt(report.best_value)} "
                   f"vs {_fmt(report.incumbent_value)}"
                   + (f", better by {report.improvement:.4g} > noise {report.threshold:.4g}"
                      if report.threshold is not None else ""))
    else:
        verdict = (f"no change: trial {report.best_trial} ({_fmt(report.best_value)}) beats the incumbent "
                   f"({_fmt(report.incumbent_value)}) by {report.improvement:.4g}, within the noise "
                   f"{_fmt(report.threshold)}" if report.improvement and report.improvement > 0 else
                   f"no change: the incumbent ({_fmt(report.incumbent_value)}) stays the best")
    return f"== stage {report.stage}: {verdict}\n   diagnosis: {report.diagnosis}: {report.advice}"


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"

