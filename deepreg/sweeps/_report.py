"""`deepreg study show`: the trial table, the best trial, the epochs pruning saved, the promote command."""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from deepreg.errors import DeepRegError
from deepreg.sweeps import _liveness, _tracking
from deepreg.sweeps._spec import StudySpec

STATE_NAMES = {TrialState.COMPLETE: "finished", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
               TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}


def trial_state(trial: FrozenTrial, retried: set[int]) -> str:
    state = STATE_NAMES.get(trial.state, trial.state.name.lower())
    attr = trial.user_attrs.get("deepreg.state")
    if trial.state == TrialState.FAIL and attr in ("skipped", "interrupted"):
        state = attr
    if trial.state == TrialState.FAIL and trial.number in retried:
        state += " (retried)"
    return state


def epoch_accounting(study: optuna.Study, spec: StudySpec) -> dict[str, int]:
    """Epochs run, the epochs budgeted (epochs per trial x trials trained), and what pruning saved."""
    run = budget = saved_pruning = saved_early = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        epochs = int(trial.user_attrs.get("deepreg.epochs_run") or len(trial.intermediate_values))
        run += epochs
        budget += spec.epochs
        if trial.state == TrialState.PRUNED:
            saved_pruning += spec.epochs - epochs
        else:
            saved_early += spec.epochs - epochs
    return {"run": run, "budgeted": budget, "saved_by_pruning": saved_pruning, "saved_by_early_stopping": saved_early}


def study_table(study: optuna.Study, spec: StudySpec, *, tracking_uri: str | None, parent_run_id: str | None) -> str:
    trials = study.get_trials(deepcopy=False)
    retried = _liveness.retried_numbers(trials)
    runs: dict[int, Any] = {}
    if tracking_uri and parent_run_id:
        try:
            runs = _tracking.trial_runs(tracking_uri, parent_run_id)
        except Exception:  # MLflow unreachable: the table still shows the storage's view
            runs = {}
    names = [p.name for p in spec.space.tuned]
    header = ["#", "state", "value", "epochs", *[_short(n) for n in names], "seconds", "run"]
    rows = []
    for trial in trials:
        run = runs.get(trial.number)
        run_id = trial.user_attrs.get("deepreg.run_id") or (run.info.run_id if run else "")
        epochs = trial.user_attrs.get("deepreg.epochs_run") or (len(trial.intermediate_values) or "")
        duration = trial.duration.total_seconds() if trial.duration else None
        note = " baseline" if trial.user_attrs.get("deepreg.baseline") else ""
        if trial.user_attrs.get(_liveness.RETRY_OF_ATTR) is not None:
            note += f" retry of {trial.user_attrs[_liveness.RETRY_OF_ATTR]}"
        rows.append([str(trial.number), trial_state(trial, retried) + note,
                     f"{trial.value:.4f}" if trial.value is not None else "",
                     str(epochs), *[_show(trial.params.get(n, "")) for n in names],
                     f"{duration:.0f}" if duration is not None else "", run_id])
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def describe_study(study: optuna.Study, *, tracking_uri: str | None = None) -> str:
    """The whole `study show` text for an Optuna study made by `deepreg sweep`."""
    values = study.user_attrs.get("deepreg.spec")
    if not values:
        raise DeepRegError(f"study {study.study_name}: not made by deepreg sweep (no spec stored)")
    spec = StudySpec.from_dict(values, source=f"study {study.study_name}")
    uri = tracking_uri or study.user_attrs.get("deepreg.tracking_uri")
    parent = study.user_attrs.get("deepreg.parent_run_id")
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    retried = _liveness.retried_numbers(trials)
    for trial in trials:
        state = trial_state(trial, retried).split(" ")[0]
        counts[state] = counts.get(state, 0) + 1
    lines = [f"study {spec.name}: {spec.objective.goal} {spec.objective.label()}; sampler {spec.sampler.type}, "
             f"pruner {spec.pruner.type}, {spec.epochs} epochs per trial",
             f"trials: {len(trials)} (" + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")",
             f"MLflow: parent run {parent} in {uri}", "",
             study_table(study, spec, tracking_uri=uri, parent_run_id=parent), ""]
    best = None
    try:
        best = study.best_trial
    except ValueError:
        pass
    if best is None:
        lines.append("best: none yet (no finished trial)")
    else:
        params = ", ".join(f"{k}={_show(v)}" for k, v in best.params.items())
        lines.append(f"best: trial {best.number}, {spec.objective.label()} {best.value:.4f}"
                     + (f" ({params})" if params else "") + f", run {best.user_attrs.get('deepreg.run_id', '?')}")
    epochs = epoch_accounting(study, spec)
    lines.append(f"epochs: {epochs['run']} run of {epochs['budgeted']} budgeted; pruning saved "
                 f"{epochs['saved_by_pruning']}, early stopping saved {epochs['saved_by_early_stopping']}")
    if best is not None:
        lines.append(f"promote the best trial with: deepreg promote --study {spec.name}")
    return "\n".join(lines)


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1] if "." in key else key


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if math.isfinite(value) else str(value)
    return str(value)


def describe_refine(name: str, stage_studies: list[str], info) -> str:
    """The stages of a refine run: each stage's incumbent, best trial, decision and diagnosis."""
    rows = [["stage study", "trials", "incumbent", "best", "improvement", "noise", "kept", "diagnosis"]]
    advice = []
    for study_name in stage_studies:
        study = optuna.load_study(study_name=study_name, storage=info.storage)
        decision = study.user_attrs.get("deepreg.refine.decision") or {}
        rows.append([study_name, str(len(study.trials)), _num(decision.get("incumbent_value")),
                     _num(decision.get("best_value")), _num(decision.get("improvement")),
                     _num(decision.get("threshold")), "yes" if decision.get("kept") else
                     ("no" if decision else "in progress"), decision.get("diagnosis", "")])
        if decision.get("advice"):
            advice.append(f"{study_name}: {decision['advice']}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"refine {name}: {len(stage_studies)} studies"]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines + [""] + advice)


def _num(value) -> str:
    return "" if value is None else f"{value:.4f}"
