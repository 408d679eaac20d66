"""The Optuna engine: create or resume a study, run trials in this process, join as a worker.

Each process runs trials one at a time with `study.optimize(n_trials=1)` between its own checks:
reap dead workers' trials, stop when the study's trial budget (shared by every worker) or this
process's wall time is used up. The budget counts every trial once: a trial that died and was
retried is not counted (its retry is), and a trial started past the budget by a race between two
workers is closed at once as "skipped" without training.

The sampler, pruner and trial budget come from `_samplers`; what is printed and the trial run names
from `_console`; the study's and trials' attribute names from `_attrs`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
import time
import warnings
from typing import Any, Callable, Mapping

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from deepreg._config import lookup_dotted
from deepreg.errors import DeepRegError
from deepreg.sweeps import _baselines, _console, _liveness, _tracking
from deepreg.sweeps._attrs import (EXPERIMENT_ATTR, LINEAGE_ATTR, PARENT_ATTR, REASON_ATTR, RUN_ATTR, SPEC_ATTR,
                                   STATE_ATTR, TRACKING_ATTR)
from deepreg.sweeps._console import echo
from deepreg.sweeps._samplers import make_pruner, make_sampler, trial_budget
from deepreg.sweeps._space import same
from deepreg.sweeps._spec import StudySpec
from deepreg.sweeps._storage import StorageInfo, _redact, open_storage
from deepreg.sweeps._trial import TrialRunner
from deepreg.training.run import StopTrial

log = logging.getLogger(__name__)

ENGINE = "optuna"


class TrialFailed(Exception):
    """A trial ended as failed for a reason already recorded on it."""


class _Skipped(Exception):
    """A trial created after the budget was used up by other workers."""


@dataclasses.dataclass
class StudyOutcome:
    """What a sweep or worker process did, and where the study stands."""

    name: str
    storage_url: str
    parent_run_id: str
    tracking_uri: str
    trials_here: int
    stopped_by: str
    study: optuna.Study

    @property
    def best(self) -> FrozenTrial | None:
        return _best(self.study)


def open_for(spec: StudySpec | None, storage_url: str) -> StorageInfo:
    reliability = spec.reliability if spec else None
    return open_storage(storage_url, heartbeat_seconds=reliability.heartbeat_seconds if reliability else 15,
                        stale_after_seconds=reliability.stale_after_seconds if reliability else 90,
                        stale_callback=_rdb_stale_callback)


def run_sweep(spec: StudySpec, *, storage: str, tracking_uri: str, experiment: str = "deepreg",
              trials: int | None = None, lineage: Mapping[str, str] | None = None,
              enqueue: list[tuple[dict, dict]] | None = None, callbacks=(), out: Callable[[str], None] = echo,
              verbose: int = 0) -> StudyOutcome:
    """Create the study (or resume it: same name, same space) and run its trials in this process."""
    if trials is not None:
        spec = spec.with_budget(trials=trials)
    info = open_for(spec, storage)
    direction = spec.objective.goal
    existing = _find_study(info, spec.name)
    if existing is not None:
        if SPEC_ATTR in existing.user_attrs:  # absent only if its first start died before writing it
            stored = StudySpec.from_dict(existing.user_attrs[SPEC_ATTR], source=f"study {spec.name}")
            _check_resumable(spec, stored)
        study = existing
        parent_id = study.user_attrs.get(PARENT_ATTR)
    else:
        study = optuna.create_study(study_name=spec.name, storage=info.storage, direction=direction,
                                    load_if_exists=True)
        parent_id = None
    parent_id = _tracking.parent_run(spec, engine=ENGINE, tracking_uri=tracking_uri, experiment=experiment,
                                     storage_url=_redact(info.url), run_id=parent_id,
                                     extra_tags=dict(lineage or {}))
    fresh = SPEC_ATTR not in study.user_attrs
    for key, value in {SPEC_ATTR: spec.to_dict(), PARENT_ATTR: parent_id, TRACKING_ATTR: tracking_uri,
                       EXPERIMENT_ATTR: experiment, LINEAGE_ATTR: dict(lineage or {})}.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    if fresh:
        for params, attrs in enqueue if enqueue is not None else _baseline(spec, out):
            study.enqueue_trial(params, user_attrs=attrs)
    seed = spec.sampler.seed + 7919 * len(study.get_trials(deepcopy=False))
    session = _Session(spec, info, study, tracking_uri=tracking_uri, experiment=experiment, parent_run_id=parent_id,
                       seed=seed, callbacks=callbacks, out=out, verbose=verbose)
    session.announce(resumed=not fresh)
    session.ensure_baselines()
    return session.loop()


def run_worker(study_name: str, *, storage: str, tracking_uri: str | None = None, experiment: str | None = None,
               trials: int | None = None, wait_seconds: float = 60.0, callbacks=(),
               out: Callable[[str], None] = echo, verbose: int = 0) -> StudyOutcome:
    """Join a study that a `sweep` created: its spec, tracking store and parent run come from the storage."""
    info = open_for(None, storage)
    deadline = time.monotonic() + wait_seconds
    while True:
        study = _find_study(info, study_name)
        if study is not None and SPEC_ATTR in study.user_attrs and PARENT_ATTR in study.user_attrs:
            break
        if time.monotonic() > deadline:
            raise DeepRegError(f"--study {study_name}: no such study in {_redact(info.url)} "
                               f"(waited {wait_seconds:.0f} s; start it with deepreg sweep SPEC)")
        time.sleep(1.0)
    spec = StudySpec.from_dict(study.user_attrs[SPEC_ATTR], source=f"study {study_name}")
    info = open_for(spec, storage)  # reopen with the study's heartbeat settings
    study = optuna.load_study(study_name=study_name, storage=info.storage)
    tracking_uri = tracking_uri or study.user_attrs[TRACKING_ATTR]
    experiment = experiment or study.user_attrs.get(EXPERIMENT_ATTR, "deepreg")
    seed = (os.getpid() * 7919 + int(time.time() * 1000)) % (2**31)
    session = _Session(spec, info, study, tracking_uri=tracking_uri, experiment=experiment,
                       parent_run_id=study.user_attrs[PARENT_ATTR], seed=seed, callbacks=callbacks, out=out,
                       verbose=verbose, process_trials=trials)
    session.announce(resumed=True, worker=True)
    return session.loop()


def _find_study(info: StorageInfo, name: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=info.storage)
    except KeyError:
        return None


def _check_resumable(spec: StudySpec, stored: StudySpec) -> None:
    what = []
    if stored.space.raw != spec.space.raw:
        what.append("search space")
    if stored.objective != spec.objective:
        what.append("objective")
    if stored.base != spec.base:
        what.append("base config")
    if stored.epochs != spec.epochs:
        what.append("epochs")
    if stored.sampler.type != spec.sampler.type:
        what.append("sampler")
    if what:
        raise DeepRegError(f"{spec.source}: study '{spec.name}' already exists with another "
                           f"{', '.join(what)}; give the spec a new name to start a new study")


def _baseline(spec: StudySpec, out) -> list[tuple[dict, dict]]:
    if not spec.baseline or spec.sampler.type == "grid" or not spec.space.tuned:
        return []
    params, why = spec.space.baseline(spec.base.to_dict())
    if params is None:
        out(f"note: the baseline is not enqueued as trial 0: {why}")
        return []
    return [(params, {"deepreg.baseline": True})]


def _rdb_stale_callback(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's RDB heartbeat failed a stale trial (in this process): retry it and close its run."""
    spec_values = study.user_attrs.get(SPEC_ATTR) or {}
    max_retries = int((spec_values.get("reliability") or {}).get("max_retries", 2))
    reason = "no heartbeat (Optuna RDB heartbeat)"
    _liveness.retry(study, trial, reason, max_retries=max_retries)
    _close_dead_run(study, trial, reason)


def _close_dead_run(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    uri, parent = study.user_attrs.get(TRACKING_ATTR), study.user_attrs.get(PARENT_ATTR)
    if uri and parent:
        try:
            _tracking.mark_dead_run(uri, parent, trial.number, reason)
        except Exception as error:  # the storage decision stands even if MLflow is unreachable
            log.warning("could not mark the MLflow run of trial %d: %s", trial.number, error)


class _Session:
    """One process's share of a study."""

    def __init__(self, spec: StudySpec, info: StorageInfo, study: optuna.Study, *, tracking_uri: str,
                 experiment: str, parent_run_id: str, seed: int, callbacks=(), out=echo, verbose: int = 0,
                 process_trials: int | None = None):
        self.spec, self.info, self.study = spec, info, study
        self.tracking_uri, self.parent_run_id = tracking_uri, parent_run_id
        self.out = out
        self.process_trials = process_trials
        self.budget = trial_budget(spec)
        self.lineage = dict(study.user_attrs.get(LINEAGE_ATTR) or {})
        self.base_dict = spec.base.to_dict()
        study.sampler = make_sampler(spec, seed)
        study.pruner = make_pruner(spec)
        self.runner = TrialRunner(spec, tracking_uri=tracking_uri, experiment=experiment,
                                  parent_run_id=parent_run_id, callbacks=callbacks, verbose=verbose)
        self.trials_here = 0
        self.current: int | None = None
        self.skipped = False

    # progress ---------------------------------------------------------------------------------
    def announce(self, *, resumed: bool, worker: bool = False) -> None:
        done = len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                  TrialState.FAIL)))
        verb = "joined" if worker else ("resumed" if resumed else "created")
        for line in _console.study_header(self.spec, verb=verb, done=done, budget=self.budget,
                                          storage_url=_redact(self.info.url), parent_run_id=self.parent_run_id,
                                          worker=worker):
            self.out(line)

    def ensure_baselines(self) -> None:
        """Fit the network-free baselines once per study, before its first trial (workers read them)."""
        if _baselines.BASELINES_ATTR in self.study.user_attrs or not self.spec.baselines:
            return
        base = self.spec.base
        self.out(f"  fitting {len(self.spec.baselines)} network-free baselines on the study's "
                 f"{base.data.split} split ...")
        table = _baselines.compute_baselines(base, self.runner.dataset(base), self.spec.baselines)
        self.study.set_user_attr(_baselines.BASELINES_ATTR, table.to_dict())
        try:
            _baselines.log_baselines(self.tracking_uri, self.parent_run_id, table)
        except Exception as error:  # the table is safe in the storage; study show still prints it
            log.warning("could not log the baselines on the parent run: %s", error)
        self.out(_console.indented(_baselines.format_table(table)))

    @property
    def baselines(self) -> _baselines.BaselineTable | None:
        return _baselines.stored_table(self.study)

    # the loop ----------------------------------------------------------------------------------
    def loop(self) -> StudyOutcome:
        started = time.monotonic()
        stopped_by = ""
        try:
            while True:
                self.reap()
                stopped_by = self._stop_reason(started)
                if stopped_by:
                    break
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        self.study.optimize(self._objective, n_trials=1, catch=(Exception,),
                                            callbacks=[self._after_trial], gc_after_trial=False)
                except UpdateFinishedTrialError:
                    self.out(f"trial {self.current}: another worker declared it dead and retries it; "
                             "its result is kept in MLflow only")
                if self.skipped:
                    stopped_by = "budget used up by other workers"
                    break
        except KeyboardInterrupt:
            self._interrupted()
            raise
        self.finish(status=None)
        return StudyOutcome(name=self.spec.name, storage_url=self.info.url, parent_run_id=self.parent_run_id,
                            tracking_uri=self.tracking_uri, trials_here=self.trials_here, stopped_by=stopped_by,
                            study=self.study)

    def reap(self) -> list[int]:
        return _liveness.reap(self.study, self.info.storage, journal=self.info.kind == "journal",
                              stale_after=self.spec.reliability.stale_after_seconds,
                              max_retries=self.spec.reliability.max_retries,
                              on_dead=lambda study, trial, reason: self._dead(trial, reason))

    def _dead(self, trial: FrozenTrial, reason: str) -> None:
        self.out(f"trial {trial.number}: {reason}; marked failed and queued again")
        _close_dead_run(self.study, trial, reason)

    def _stop_reason(self, started: float) -> str:
        if self.process_trials is not None and self.trials_here >= self.process_trials:
            return f"{self.process_trials} trials run by this worker"
        minutes = self.spec.budget.minutes
        if minutes and time.monotonic() - started > minutes * 60:
            return f"{minutes:g} minutes used"
        trials = self.study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        if waiting:
            return ""
        if self.budget is not None and len(_counted(trials)) >= self.budget:
            return "trial budget used"
        sampler = self.study.sampler
        if isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(self.study):
            return "grid done"
        return ""

    def _objective(self, trial: optuna.Trial) -> float:
        self.current = trial.number
        trial.set_user_attr(_liveness.WORKER_ATTR, _liveness.identity())
        trial.set_user_attr(_liveness.HEARTBEAT_ATTR, time.time())
        if self._past_budget(trial):
            self.skipped = True
            trial.set_user_attr(STATE_ATTR, "skipped")
            trial.set_user_attr(REASON_ATTR, "started after other workers had used the trial budget")
            raise _Skipped("over budget")
        seconds = self.spec.reliability.heartbeat_seconds
        beat = _liveness.Heartbeat(trial, seconds) if self.info.kind == "journal" else contextlib.nullcontext()
        with beat:
            return self._evaluate(trial)

    def _past_budget(self, trial: optuna.Trial) -> bool:
        if self.budget is None or trial.user_attrs.get(_liveness.RETRY_OF_ATTR) is not None:
            return False
        earlier = [t for t in _counted(self.study.get_trials(deepcopy=False)) if t.number < trial.number]
        return len(earlier) >= self.budget

    def _evaluate(self, trial: optuna.Trial) -> float:
        chosen, overrides = self.spec.space.suggest(trial, self.base_dict)
        baseline = all(same(lookup_dotted(self.base_dict, key), value) for key, value in overrides.items())
        extra: dict[str, Any] = {"deepreg.retry_of": trial.user_attrs.get(_liveness.RETRY_OF_ATTR),
                                 "deepreg.baseline": "true" if baseline else None, **self.lineage}
        extra.update({f"deepreg.variant.{name}": value for name, value in chosen.items()
                      if self.spec.space.by_name[name].kind == "variant"})
        tags = _tracking.trial_tags(self.spec.name, ENGINE, trial.number, storage_url=_redact(self.info.url),
                                    extra=extra)
        tried = {name: value for name, value in chosen.items() if self.spec.space.by_name[name].kind != "fixed"}
        run_name = _console.trial_run_name(self.spec.name, trial.number, tried)
        try:
            outcome = self.runner.run(overrides, run_name=run_name, tags=tags,
                                      report=functools.partial(self._report, trial))
        except StopTrial as stop:
            trial.set_user_attr(STATE_ATTR, stop.state)
            trial.set_user_attr(REASON_ATTR, stop.reason)
            if stop.state == "pruned":
                raise optuna.TrialPruned(stop.reason) from None
            raise TrialFailed(stop.reason) from None
        except KeyboardInterrupt:
            trial.set_user_attr(STATE_ATTR, "interrupted")
            trial.set_user_attr(REASON_ATTR, "interrupted (Ctrl-C)")
            raise
        except Exception as error:
            trial.set_user_attr(STATE_ATTR, "failed")
            trial.set_user_attr(REASON_ATTR, f"{type(error).__name__}: {error}"[:2000])
            raise
        for key, value in {RUN_ATTR: outcome.run_id, "deepreg.epochs_run": outcome.epochs_run,
                           "deepreg.seconds": round(outcome.seconds, 2), "deepreg.train_error": outcome.train_error,
                           "deepreg.val_error": outcome.val_error, "deepreg.error_metric": outcome.error_metric,
                           "deepreg.test_score": outcome.test_score, "deepreg.baseline": baseline or None}.items():
            if value is not None:
                trial.set_user_attr(key, value)
        if not math.isfinite(outcome.value):
            trial.set_user_attr(STATE_ATTR, "failed")
            trial.set_user_attr(REASON_ATTR, f"the objective is {outcome.value}")
            raise TrialFailed(f"the objective is {outcome.value}")
        trial.set_user_attr(STATE_ATTR, "finished")
        return outcome.value

    def _report(self, trial: optuna.Trial, value: float, epoch: int) -> str | None:
        trial.report(value, epoch)
        if trial.should_prune():
            return (f"pruned at epoch {epoch} by the {self.spec.pruner.type} pruner "
                    f"({self.spec.objective.epoch_key} {value:.4g})")
        return None

    def _after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.trials_here += 1
        state = trial.user_attrs.get(STATE_ATTR) or trial.state.name.lower()
        if trial.state == TrialState.COMPLETE:
            self.out(_console.finished_line(trial, self.spec, self.baselines))
            best = _best(study)
            if best is not None and best.number == trial.number:
                _tracking.log_best(self.tracking_uri, self.parent_run_id, value=trial.value, number=trial.number,
                                   run_id=trial.user_attrs.get(RUN_ATTR), step=trial.number,
                                   metric=self.spec.objective.label())
        elif state != "skipped":
            self.out(_console.ended_line(trial, state))

    def _interrupted(self) -> None:
        if self.current is not None:
            trials = {t.number: t for t in self.study.get_trials(deepcopy=False)}
            trial = trials.get(self.current)
            if trial is not None and trial.state == TrialState.FAIL and \
                    trial.user_attrs.get(STATE_ATTR) == "interrupted" and \
                    self.current not in _liveness.retried_numbers(list(trials.values())):
                _liveness.retry(self.study, trial, "interrupted (Ctrl-C)",
                                max_retries=self.spec.reliability.max_retries + 1)
                self.out(f"trial {trial.number} interrupted; queued again for the next start")
        self.finish(status="KILLED")

    def finish(self, status: str | None) -> None:
        """Refresh the parent run's summary; close it when no trial runs or waits any more."""
        try:
            from deepreg.sweeps._report import study_table
            table = study_table(self.study, self.spec, tracking_uri=self.tracking_uri,
                                parent_run_id=self.parent_run_id)
            _tracking.log_summary(self.tracking_uri, self.parent_run_id, self.study, table_text=table,
                                  spec=self.spec, baselines=self.baselines)
            best = _best(self.study)
            if best is not None:
                _tracking.log_best(self.tracking_uri, self.parent_run_id, value=best.value, number=best.number,
                                   run_id=best.user_attrs.get(RUN_ATTR), step=len(self.study.trials),
                                   metric=self.spec.objective.label())
            # Other workers' running trials keep the parent open; after Ctrl-C a queued retry does not.
            states = (TrialState.RUNNING,) if status == "KILLED" else (TrialState.RUNNING, TrialState.WAITING)
            if not self.study.get_trials(deepcopy=False, states=states):
                _tracking.finish_parent(self.tracking_uri, self.parent_run_id, status or "FINISHED")
        except Exception as error:  # the study itself is safe in the storage
            log.warning("could not update the study's parent run: %s", error)


def _counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    retried = _liveness.retried_numbers(trials)
    return [t for t in trials if t.number not in retried and t.user_attrs.get(STATE_ATTR) != "skipped"]


def _best(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None
