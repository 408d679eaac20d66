"""The keras-tuner engine: the same spec, searched by keras-tuner, logged to MLflow the same way.

The spec's space compiles to keras-tuner hyperparameters (conditions become conditional scopes).
The algorithm follows the spec: pruner hyperband or successive_halving -> Hyperband (its brackets
give each trial `tuner/epochs`; a trial trains from scratch for that many epochs); sampler grid ->
GridSearch; random -> RandomSearch; tpe -> BayesianOptimization. keras-tuner keeps its state in a
project folder next to the MLflow store, so a re-run with the same name resumes.

keras-tuner records a crashed trial as failed and moves on without saying so; this engine prints
each failure, marks the trial's MLflow run failed (with the reason) and returns the failures, so
callers (and tests) can act on them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Callable

from deepreg.sweeps import _baselines, _tracking
from deepreg.sweeps._console import indented, trial_run_name
from deepreg.sweeps._spec import StudySpec
from deepreg.sweeps._trial import TrialRunner
from deepreg.training.run import StopTrial

log = logging.getLogger(__name__)
ENGINE = "keras-tuner"


@dataclasses.dataclass
class KerasTunerOutcome:
    name: str
    directory: str
    parent_run_id: str
    tracking_uri: str
    trials: list[dict]  # number, state, value, params, run_id, reason
    algorithm: str

    @property
    def failed(self) -> list[dict]:
        return [t for t in self.trials if t["state"] != "finished"]

    @property
    def best(self) -> dict | None:
        done = [t for t in self.trials if t["state"] == "finished" and t["value"] is not None]
        return min(done, key=lambda t: t["sign"] * t["value"]) if done else None


def default_directory(tracking_uri: str) -> Path:
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).parent.resolve() / "keras-tuner"
    return Path("mlruns/keras-tuner").resolve()


def run_keras_tuner(spec: StudySpec, *, tracking_uri: str, experiment: str = "deepreg", directory: str | None = None,
                    trials: int | None = None, callbacks=(), out: Callable[[str], None] = print,
                    verbose: int = 0) -> KerasTunerOutcome:
    """Search `spec` with keras-tuner; every trial a child MLflow run under the study's parent run."""
    import keras_tuner as kt

    if trials is not None:
        spec = spec.with_budget(trials=trials)
    folder = Path(directory) if directory else default_directory(tracking_uri)
    folder.mkdir(parents=True, exist_ok=True)
    parent_id = _tracking.parent_run(spec, engine=ENGINE, tracking_uri=tracking_uri, experiment=experiment,
                                     storage_url=str(folder / spec.name))
    runner = TrialRunner(spec, tracking_uri=tracking_uri, experiment=experiment, parent_run_id=parent_id,
                         callbacks=callbacks, verbose=verbose)
    base = spec.base.to_dict()
    hp = kt.HyperParameters()
    spec.space.declare_keras_tuner(hp, base)
    goal = "min" if spec.objective.goal == "minimize" else "max"
    objective = kt.Objective(spec.objective.epoch_key, direction=goal)
    max_trials = spec.budget.trials or (spec.space.grid_size(spec.source) if spec.sampler.type == "grid" else 10)
    common = dict(objective=objective, hyperparameters=hp, tune_new_entries=False, allow_new_entries=False,
                  directory=str(folder), project_name=spec.name, overwrite=False, seed=spec.sampler.seed,
                  max_consecutive_failed_trials=max(3, max_trials + 1))
    if spec.pruner.type in ("hyperband", "successive_halving"):
        algorithm, base_class = "hyperband", kt.Hyperband
        common.update(max_epochs=spec.epochs, factor=spec.pruner.reduction_factor)
    elif spec.sampler.type == "grid":
        algorithm, base_class = "grid", kt.GridSearch
        common.update(max_trials=max_trials)
    elif spec.sampler.type == "random":
        algorithm, base_class = "random", kt.RandomSearch
        common.update(max_trials=max_trials)
    else:
        algorithm, base_class = "bayesian", kt.BayesianOptimization
        common.update(max_trials=max_trials, num_initial_points=spec.sampler.startup_trials)
    records: dict[str, dict] = {}
    sign = 1.0 if goal == "min" else -1.0

    class DeepRegTuner(base_class):  # type: ignore[misc, valid-type]
        def run_trial(self, trial, *args, **kwargs):
            return _run_trial(trial)

    def _run_trial(trial) -> dict:
        number = int(trial.trial_id)
        values = trial.hyperparameters
        chosen, overrides = spec.space.from_keras_tuner(values, base)
        epochs = int(values.values.get("tuner/epochs", spec.epochs))
        tags = _tracking.trial_tags(spec.name, ENGINE, number, storage_url=str(folder / spec.name),
                                    extra={"deepreg.kt_trial_id": trial.trial_id, "deepreg.algorithm": algorithm})
        params = {k: v for k, v in chosen.items() if spec.space.by_name[k].kind != "fixed"}
        record = {"number": number, "params": params, "state": "running", "value": None, "run_id": None,
                  "reason": "", "sign": sign, "epochs": epochs}
        records[trial.trial_id] = record
        started = time.monotonic()
        try:
            outcome = runner.run(overrides, run_name=trial_run_name(spec.name, f"kt{number}", params), tags=tags,
                                 epochs=epochs)
        except StopTrial as stop:
            record.update(state=stop.state, reason=stop.reason)
            out(f"trial {number} {stop.state}: {stop.reason}")
            raise kt.errors.FailedTrialError(stop.reason) from None
        except Exception as error:
            record.update(state="failed", reason=f"{type(error).__name__}: {error}")
            out(f"trial {number} failed: {record['reason']}")
            raise kt.errors.FailedTrialError(record["reason"]) from None
        if not math.isfinite(outcome.value):
            record.update(state="failed", reason=f"the objective is {outcome.value}", run_id=outcome.run_id)
            _tracking.mark_dead_run(tracking_uri, parent_id, number, record["reason"])
            out(f"trial {number} failed: {record['reason']}")
            raise kt.errors.FailedTrialError(record["reason"])
        record.update(state="finished", value=outcome.value, run_id=outcome.run_id)
        shown = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in params.items())
        out(f"trial {number} finished: {spec.objective.label()} {outcome.value:.4f} "
            f"({outcome.epochs_run} epochs, {time.monotonic() - started:.0f} s) {shown}")
        return {spec.objective.epoch_key: outcome.value}

    tuner = DeepRegTuner(**common)
    out(f"study {spec.name} with keras-tuner ({algorithm}); project {folder / spec.name}; "
        f"MLflow parent run {parent_id}")
    if spec.baselines:
        table = _baselines.compute_baselines(spec.base, runner.dataset(spec.base), spec.baselines)
        _baselines.log_baselines(tracking_uri, parent_id, table)
        out(indented(_baselines.format_table(table)))
    status = "FINISHED"
    try:
        tuner.search(verbose=0)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        outcome = _collect(tuner, records, spec, folder, parent_id, tracking_uri, algorithm, sign)
        _summarise(outcome, spec, status)
    return outcome


def _collect(tuner, records: dict, spec: StudySpec, folder: Path, parent_id: str, tracking_uri: str,
             algorithm: str, sign: float) -> KerasTunerOutcome:
    """Every trial the oracle knows (this run's and earlier runs'), with keras-tuner's own status."""
    trials = []
    runs = _tracking.trial_runs(tracking_uri, parent_id)
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        record = dict(records.get(trial_id) or {})
        number = int(trial_id)
        run = runs.get(number)
        status = str(trial.status)
        state = {"COMPLETED": "finished", "FAILED": "failed", "INVALID": "failed", "RUNNING": "running",
                 "STOPPED": "stopped"}.get(status, status.lower())
        if record.get("state") in ("pruned", "failed"):
            state = record["state"]
        score = trial.score if trial.score is not None and math.isfinite(trial.score) else None
        params = record.get("params") or {k: v for k, v in trial.hyperparameters.values.items()
                                          if not k.startswith("tuner/")}
        message = (trial.message or "").strip().splitlines()
        reason = record.get("reason") or (message[-1] if message else "")
        trials.append({"number": number, "state": state, "value": score if state == "finished" else None,
                       "params": params, "run_id": record.get("run_id") or (run.info.run_id if run else None),
                       "reason": reason, "sign": sign})
    return KerasTunerOutcome(name=spec.name, directory=str(folder / spec.name), parent_run_id=parent_id,
                             tracking_uri=tracking_uri, trials=trials, algorithm=algorithm)


def _summarise(outcome: KerasTunerOutcome, spec: StudySpec, status: str) -> None:
    """Best value, a trials table and the optimisation history on the parent run."""
    import mlflow

    from deepreg._plotting import pyplot

    plt = pyplot()
    client = mlflow.MlflowClient(outcome.tracking_uri)
    try:
        best = outcome.best
        if best is not None:
            _tracking.log_best(outcome.tracking_uri, outcome.parent_run_id, value=best["value"],
                               number=best["number"], run_id=best["run_id"], step=len(outcome.trials),
                               metric=spec.objective.label())
        lines = ["number\tstate\tvalue\trun_id\tparams\treason"]
        for t in outcome.trials:
            lines.append(f"{t['number']}\t{t['state']}\t{t['value']}\t{t['run_id']}\t{t['params']}\t{t['reason']}")
        client.log_text(outcome.parent_run_id, "\n".join(lines) + "\n", "summary/trials.tsv")
        done = [t for t in outcome.trials if t["value"] is not None]
        if done:
            figure, axes = plt.subplots(figsize=(8, 5))
            numbers = [t["number"] for t in done]
            values = [t["value"] for t in done]
            running = [values[0]]
            for value in values[1:]:
                running.append(min(running[-1], value) if outcome.trials[0]["sign"] > 0 else max(running[-1], value))
            axes.plot(numbers, values, "o", label="trial")
            axes.plot(numbers, running, "-", label="best so far")
            axes.set_xlabel("trial")
            axes.set_ylabel(spec.objective.label())
            axes.set_title(f"{spec.name}: keras-tuner {outcome.algorithm}")
            axes.legend()
            figure.tight_layout()
            import tempfile
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "optimization_history.png"
                figure.savefig(path, dpi=100)
                client.log_artifact(outcome.parent_run_id, str(path), "summary")
            plt.close(figure)
        client.set_terminated(outcome.parent_run_id, status)
    except Exception as error:
        log.warning("could not update the keras-tuner study's parent run: %s", error)
