"""Study specs (`sweeps/*.yaml`): what to search, from which baseline, how, and for how long.

A spec names the dataset (`data`), the baseline (`base`: a run YAML path, or sections `model` and
`training`, where `model` may also be a path to a model-only YAML; every file read, and the spec
itself, may start `from:` another, as run YAMLs do), the search space, the objective,
sampler, pruner, budget and epochs per trial. A refine spec (`stages`) adds an ordered list of
stages, each a small study that starts from the best config so far. The resolved spec, with the
baseline spelled out in full, is stored in the study so that workers need no files.

Two keys look alike: `baseline` (true by default) evaluates the base config itself as trial 0;
`baselines` names the network-free baselines (`deepreg.baselines`) the study fits on its
data and split before its first trial: true (all, the default), false, a list of names, or
`{skip: [cis_kmer_ridge, cis_kmer_proximal_ridge]}` to leave out the slow k-mer ridges.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any, Literal, Mapping

from deepreg._config import Config, check_keys, load_yaml, resolve_from, set_dotted
from deepreg.errors import DeepRegError
from deepreg.sweeps._baselines import parse_names as parse_baseline_names
from deepreg.sweeps._space import Space

METRICS = {"loss": "minimize", "mse": "minimize", "pearson_r": "maximize", "accuracy": "maximize"}
TOP_KEYS = {"name", "description", "data", "base", "space", "objective", "sampler", "pruner", "budget", "epochs",
            "baseline", "baselines", "reliability", "stages", "noise", "diagnosis"}
STAGE_KEYS = {"name", "space", "sampler", "pruner", "budget", "epochs"}


@dataclasses.dataclass(frozen=True)
class Objective(Config):
    """What a trial is scored by: a validation score (per epoch for pruning, at the end for the value)."""

    metric: Literal["loss", "mse", "pearson_r", "accuracy"] = "loss"
    direction: Literal["minimize", "maximize"] | None = None

    @property
    def goal(self) -> str:
        return self.direction or METRICS[self.metric]

    @property
    def epoch_key(self) -> str:
        return f"val_{self.metric}"

    def label(self) -> str:
        return f"validation {self.metric.replace('_', ' ')}"

    def better(self, a: float, b: float) -> bool:
        return a < b if self.goal == "minimize" else a > b

    def improvement(self, candidate: float, incumbent: float) -> float:
        return incumbent - candidate if self.goal == "minimize" else candidate - incumbent


@dataclasses.dataclass(frozen=True)
class SamplerSpec(Config):
    """tpe (default; multivariate, grouped for conditional spaces), random or grid."""

    type: Literal["tpe", "random", "grid"] = "tpe"
    seed: int = 0
    startup_trials: int = 5


@dataclasses.dataclass(frozen=True)
class PrunerSpec(Config):
    """median, hyperband, successive_halving or none; epochs are the pruning steps."""

    type: Literal["median", "hyperband", "successive_halving", "none"] = "median"
    startup_trials: int = 3
    warmup_epochs: int = 2
    min_epochs: int = 1
    reduction_factor: int = 3


@dataclasses.dataclass(frozen=True)
class Budget(Config):
    """How many trials the study holds in total (all workers), and/or minutes of wall time per process."""

    trials: int | None = None
    minutes: float | None = None


@dataclasses.dataclass(frozen=True)
class Reliability(Config):
    """Liveness of workers: heartbeat period, when a silent trial counts as dead, how often to retry it."""

    heartbeat_seconds: int = 15
    stale_after_seconds: int = 90
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.heartbeat_seconds < 1 or self.stale_after_seconds <= self.heartbeat_seconds:
            raise DeepRegError("reliability: expected heartbeat_seconds >= 1 and "
                               "stale_after_seconds > heartbeat_seconds")


@dataclasses.dataclass(frozen=True)
class Noise(Config):
    """Refine: repeated seeds of the incumbent measure the noise a change has to beat (x factor)."""

    seeds: int = 3
    factor: float = 1.0


@dataclasses.dataclass(frozen=True)
class Diagnosis(Config):
    """Refine: the desired value of the training/validation error, and when train is "far below" validation."""

    target: float | None = None
    overfit_ratio: float = 0.75


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    space: Space
    sampler: SamplerSpec
    pruner: PrunerSpec
    budget: Budget
    epochs: int


@dataclasses.dataclass(frozen=True)
class StudySpec(Config):
    """A parsed, validated study spec (use `load_spec`, `StudySpec.from_yaml` or `StudySpec.from_dict`).

    A `Config` whose `from_dict` is its own: the space, the stages and the baseline are read against
    each other (a stage inherits the top-level sampler, the space's keys are the base's), which field
    by field coercion cannot do. `to_dict` is the resolved spec (`raw`), so the inherited `to_yaml`,
    `to_params` and `with_updates` work on the spec's keys.
    """

    name: str
    description: str
    base: Any  # RunConfig, with the spec's data merged in
    space: Space
    objective: Objective
    sampler: SamplerSpec
    pruner: PrunerSpec
    budget: Budget
    epochs: int
    baseline: bool
    reliability: Reliability
    stages: tuple[Stage, ...] = ()
    noise: Noise = Noise()
    diagnosis: Diagnosis = Diagnosis()
    # The network-free baselines fitted before the first trial (key `baselines`; not `baseline`, trial 0).
    baselines: tuple[str, ...] = ()
    source: str = "spec"
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def is_refine(self) -> bool:
        return bool(self.stages)

    @classmethod
    def from_yaml(cls, path: str | Path, section: str | None = None, *,
                  overrides: Mapping[str, Any] | None = None) -> "StudySpec":
        """Read a spec file (`from:` resolved); its paths are looked up from the working directory, then beside it."""
        path = Path(path)
        spec = cls.from_dict(load_yaml(path, section), source=str(path), root=path.parent)
        return spec.with_updates(overrides, source="--set") if overrides else spec

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, *, source: str | None = "spec", prefix: str = "",
                  root: Path | None = None) -> "StudySpec":
        from deepreg.training.config import RunConfig

        values = dict(values or {})
        source = source or "spec"
        check_keys(values, TOP_KEYS, source=source, prefix=prefix)
        name = values.get("name")
        if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\ \t\n"):
            raise DeepRegError(f"{source}: key 'name': expected a study name without spaces or slashes, got {name!r}")
        base = _resolve_base(values.get("base"), values.get("data"), source, root)
        config_keys = set(RunConfig().to_params())
        objective = Objective.from_dict(_mapping(values, "objective", source), source=source, prefix="objective.")
        _check_objective(objective, base, source)
        sampler = SamplerSpec.from_dict(_mapping(values, "sampler", source), source=source, prefix="sampler.")
        pruner = PrunerSpec.from_dict(_mapping(values, "pruner", source), source=source, prefix="pruner.")
        budget = Budget.from_dict(_mapping(values, "budget", source), source=source, prefix="budget.")
        epochs = _epochs(values.get("epochs", base.training.epochs), source, "epochs")
        reliability = Reliability.from_dict(_mapping(values, "reliability", source), source=source,
                                            prefix="reliability.")
        space = Space.from_mapping(_mapping(values, "space", source), source=source, config_keys=config_keys)
        baseline = values.get("baseline", True)
        if not isinstance(baseline, bool):
            raise DeepRegError(f"{source}: key 'baseline': expected true or false, got {baseline!r}")
        stages = tuple(_parse_stage(i, s, values, source, config_keys, base) for i, s in
                       enumerate(values.get("stages") or []))
        if "stages" in values and not isinstance(values["stages"], list):
            raise DeepRegError(f"{source}: key 'stages': expected a list of stages")
        if stages and space:
            raise DeepRegError(f"{source}: a refine spec puts its parameters in 'stages', not in 'space'")
        if not stages:
            _check_budget(budget, sampler, space, source)
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise DeepRegError(f"{source}: key 'stages': stage names repeat ({names})")
        noise = Noise.from_dict(_mapping(values, "noise", source), source=source, prefix="noise.")
        diagnosis = Diagnosis.from_dict(_mapping(values, "diagnosis", source), source=source, prefix="diagnosis.")
        description = str(values.get("description") or "").strip()
        network_free = parse_baseline_names(values.get("baselines"), source)
        spec = cls(name=name, description=description, base=base, space=space, objective=objective,
                   sampler=sampler, pruner=pruner, budget=budget, epochs=epochs, baseline=baseline,
                   reliability=reliability, stages=stages, noise=noise, diagnosis=diagnosis,
                   baselines=network_free, source=source, raw={})
        raw = {**values, "base": base.to_dict()}
        raw.pop("data", None)
        return dataclasses.replace(spec, raw=raw)

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec (baseline spelled out), as stored in the study for workers."""
        return dict(self.raw)

    def with_budget(self, trials: int | None = None, minutes: float | None = None) -> "StudySpec":
        budget = {"trials": trials if trials is not None else self.budget.trials,
                  "minutes": minutes if minutes is not None else self.budget.minutes}
        return self.changed(budget=budget)

    def changed(self, **values: Any) -> "StudySpec":
        """The spec with top-level keys replaced (name, epochs, budget...), validated again."""
        return self.with_updates(values)

    def with_updates(self, updates: Mapping[str, Any], *, source: str | None = None) -> "StudySpec":
        """The spec with dotted keys set (`budget.trials`, `epochs`, also keys it did not write), validated again."""
        merged = copy.deepcopy(dict(self.raw))
        for key, value in updates.items():
            set_dotted(merged, key, value)
        return StudySpec.from_dict(merged, source=source or self.source)

    def with_base_updates(self, overrides: Mapping[str, Any]) -> "StudySpec":
        """The spec with dotted overrides applied to its baseline (`deepreg sweep --set`)."""
        return self.changed(base=self.base.with_updates(overrides, source="--set").to_dict())

    def for_stage(self, stage: Stage, name: str, base, baseline: bool = True) -> "StudySpec":
        """The plain study that one refine stage runs, starting from `base` (the incumbent config)."""
        raw = {"name": name, "description": f"{self.name}: stage {stage.name}", "base": base.to_dict(),
               "space": stage.space.raw, "objective": self.objective.to_dict(), "sampler": stage.sampler.to_dict(),
               "pruner": stage.pruner.to_dict(), "budget": stage.budget.to_dict(), "epochs": stage.epochs,
               "reliability": self.reliability.to_dict(), "baseline": baseline,
               "baselines": list(self.baselines)}
        return StudySpec.from_dict(raw, source=f"{self.source} (stage {stage.name})")

    def validate_points(self) -> int:
        """Build the run config of every point of the space(s); return how many were checked."""
        count = 0
        for space in [self.space] + [stage.space for stage in self.stages]:
            base = self.base.to_dict()
            for overrides in space.points(base):
                try:
                    self.base.with_updates({**overrides, "training.epochs": self.epochs}, source=self.source)
                except DeepRegError as error:
                    raise DeepRegError(f"{error} (at the point {overrides})") from None
                count += 1
        return count


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec YAML."""
    return StudySpec.from_yaml(path)


def _mapping(values: Mapping[str, Any], key: str, source: str) -> dict:
    value = values.get(key) or {}
    if isinstance(value, str) and key in ("sampler", "pruner"):
        return {"type": value}
    if not isinstance(value, Mapping):
        raise DeepRegError(f"{source}: key '{key}': expected a mapping")
    if key == "objective":
        value = dict(value)
        metric = str(value.get("metric", "loss"))
        for prefix in ("val_", "validation_"):
            metric = metric.removeprefix(prefix)
        value["metric"] = metric
    return dict(value)


def _epochs(value: Any, source: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DeepRegError(f"{source}: key '{key}': expected a positive number of epochs, got {value!r}")
    return value


def _resolve_base(base: Any, data: Any, source: str, root: Path | None):
    from deepreg.training.config import RunConfig

    values: dict[str, Any] = {}
    if isinstance(base, str):
        values = load_yaml(_path(base, root))
    elif isinstance(base, Mapping):
        values = resolve_from(base, root or Path("."), source)
        if isinstance(values.get("config"), str):
            values = {**load_yaml(_path(values.pop("config"), root)), **values}
        if isinstance(values.get("model"), str):
            values["model"] = load_yaml(_path(values["model"], root))
    elif base is not None:
        raise DeepRegError(f"{source}: key 'base': expected a run YAML path or sections model and training")
    if data is not None:
        if not isinstance(data, Mapping):
            raise DeepRegError(f"{source}: key 'data': expected a mapping of data config keys")
        values["data"] = {**(values.get("data") or {}), **data}
    return RunConfig.from_dict(values, source=f"{source} (base)")


def _path(text: str, root: Path | None) -> Path:
    """A path in a spec: as given when it exists from the working directory, else next to the spec."""
    path = Path(text)
    if path.exists() or path.is_absolute() or root is None:
        return path
    beside = root / path
    return beside if beside.exists() else root.parent / path


def _check_objective(objective: Objective, base, source: str) -> None:
    task = base.model.task
    if objective.metric == "accuracy" and task != "classification":
        raise DeepRegError(f"{source}: key 'objective.metric': accuracy needs model.task classification")
    if objective.metric in ("mse", "pearson_r") and task != "regression":
        raise DeepRegError(f"{source}: key 'objective.metric': {objective.metric} needs model.task regression")


def _check_budget(budget: Budget, sampler: SamplerSpec, space: Space, source: str) -> None:
    if budget.trials is not None and budget.trials < 1:
        raise DeepRegError(f"{source}: key 'budget.trials': expected at least 1 trial")
    if budget.minutes is not None and (budget.minutes <= 0 or math.isnan(budget.minutes)):
        raise DeepRegError(f"{source}: key 'budget.minutes': expected a positive number of minutes")
    if sampler.type == "grid":
        space.grid(source)
    elif budget.trials is None and budget.minutes is None:
        raise DeepRegError(f"{source}: key 'budget': give trials and/or minutes (only a grid has a natural size)")


def _parse_stage(index: int, values: Any, top: Mapping[str, Any], source: str, config_keys: set[str],
                 base) -> Stage:
    where = f"{source}: stage {index + 1}"
    if not isinstance(values, Mapping):
        raise DeepRegError(f"{where}: expected a mapping with name and space")
    check_keys(values, STAGE_KEYS, source=where)
    name = values.get("name")
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ \t\n."):
        raise DeepRegError(f"{where}: key 'name': expected a short stage name without spaces, dots or slashes")
    space = Space.from_mapping(values.get("space"), source=f"{source} (stage {name})", config_keys=config_keys)
    if not space.tuned:
        raise DeepRegError(f"{where}: key 'space': a stage needs at least one parameter to vary")
    sampler = SamplerSpec.from_dict({**_mapping(top, "sampler", source), **_mapping(values, "sampler", where)},
                                    source=where, prefix="sampler.")
    pruner = PrunerSpec.from_dict({**_mapping(top, "pruner", source), **_mapping(values, "pruner", where)},
                                  source=where, prefix="pruner.")
    budget = Budget.from_dict({**_mapping(top, "budget", source), **_mapping(values, "budget", where)},
                              source=where, prefix="budget.")
    _check_budget(budget, sampler, space, where)
    epochs = _epochs(values.get("epochs", top.get("epochs", base.training.epochs)), where, "epochs")
    return Stage(name=name, space=space, sampler=sampler, pruner=pruner, budget=budget, epochs=epochs)
