"""`deepreg study show`: the baselines to beat, the trial table, the best trial, the epochs pruning saved,
the promote command; and the summary figure of the trials' test scores against the baselines."""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from deepreg.errors import DeepRegError
from deepreg.sweeps import _baselines, _liveness, _tracking
from deepreg.sweeps._attrs import PARENT_ATTR, RUN_ATTR, SPEC_ATTR, STATE_ATTR, TRACKING_ATTR
from deepreg.sweeps._console import aligned, short_key, show_value
from deepreg.sweeps._spec import StudySpec

STATE_NAMES = {TrialState.COMPLETE: "finished", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
               TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}


def trial_state(trial: FrozenTrial, retried: set[int]) -> str:
    state = STATE_NAMES.get(trial.state, trial.state.name.lower())
    attr = trial.user_attrs.get(STATE_ATTR)
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
    table = _baselines.stored_table(study)
    short = _baselines.SCORES[spec.base.model.task].short
    header = ["#", "state", "value", f"test {short}", *(["vs baseline"] if table and table.best else []), "epochs",
              *[short_key(n) for n in names], "seconds", "run"]
    rows = []
    for trial in trials:
        run = runs.get(trial.number)
        run_id = trial.user_attrs.get(RUN_ATTR) or (run.info.run_id if run else "")
        epochs = trial.user_attrs.get("deepreg.epochs_run") or (len(trial.intermediate_values) or "")
        duration = trial.duration.total_seconds() if trial.duration else None
        note = " baseline" if trial.user_attrs.get("deepreg.baseline") else ""
        if trial.user_attrs.get(_liveness.RETRY_OF_ATTR) is not None:
            note += f" retry of {trial.user_attrs[_liveness.RETRY_OF_ATTR]}"
        test = test_score(trial, run, spec)
        rows.append([str(trial.number), trial_state(trial, retried) + note,
                     f"{trial.value:.4f}" if trial.value is not None else "",
                     f"{test:.4f}" if test is not None else "",
                     *([_baselines.margin_text(test, table)] if table and table.best else []),
                     str(epochs), *[show_value(trial.params.get(n, "")) for n in names],
                     f"{duration:.0f}" if duration is not None else "", run_id])
    return "\n".join(aligned([header, *rows]))


def test_score(trial: FrozenTrial, run, spec: StudySpec) -> float | None:
    """A finished trial's test r (or accuracy): from the study, else from its MLflow run."""
    if trial.state != TrialState.COMPLETE:
        return None
    value = trial.user_attrs.get("deepreg.test_score")
    if value is None and run is not None:
        value = run.data.metrics.get(_baselines.SCORES[spec.base.model.task].test_key)
    return float(value) if value is not None and math.isfinite(float(value)) else None


def describe_study(study: optuna.Study, *, tracking_uri: str | None = None) -> str:
    """The whole `study show` text for an Optuna study made by `deepreg sweep`."""
    values = study.user_attrs.get(SPEC_ATTR)
    if not values:
        raise DeepRegError(f"study {study.study_name}: not made by deepreg sweep (no spec stored)")
    spec = StudySpec.from_dict(values, source=f"study {study.study_name}")
    uri = tracking_uri or study.user_attrs.get(TRACKING_ATTR)
    parent = study.user_attrs.get(PARENT_ATTR)
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    retried = _liveness.retried_numbers(trials)
    for trial in trials:
        state = trial_state(trial, retried).split(" ")[0]
        counts[state] = counts.get(state, 0) + 1
    lines = [f"study {spec.name}: {spec.objective.goal} {spec.objective.label()}; sampler {spec.sampler.type}, "
             f"pruner {spec.pruner.type}, {spec.epochs} epochs per trial",
             f"trials: {len(trials)} (" + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")",
             f"MLflow: parent run {parent} in {uri}", "", *_baseline_lines(study, spec),
             study_table(study, spec, tracking_uri=uri, parent_run_id=parent), ""]
    best = None
    try:
        best = study.best_trial
    except ValueError:
        pass
    if best is None:
        lines.append("best: none yet (no finished trial)")
    else:
        params = ", ".join(f"{k}={show_value(v)}" for k, v in best.params.items())
        lines.append(f"best: trial {best.number}, {spec.objective.label()} {best.value:.4f}"
                     + (f" ({params})" if params else "") + f", run {best.user_attrs.get(RUN_ATTR, '?')}")
        verdict = champion_verdict(best.user_attrs.get("deepreg.test_score"), _baselines.stored_table(study))
        if verdict:
            lines.append(verdict)
    epochs = epoch_accounting(study, spec)
    lines.append(f"epochs: {epochs['run']} run of {epochs['budgeted']} budgeted; pruning saved "
                 f"{epochs['saved_by_pruning']}, early stopping saved {epochs['saved_by_early_stopping']}")
    if best is not None:
        lines.append(f"promote the best trial with: deepreg promote --study {spec.name}")
    return "\n".join(lines)


def _baseline_lines(study: optuna.Study, spec: StudySpec) -> list[str]:
    table = _baselines.stored_table(study)
    if table is None:
        reason = "the spec's baselines: false" if not spec.baselines else "not fitted (a study made before baselines)"
        return [f"network-free baselines: none ({reason})", ""]
    return [_baselines.format_table(table), ""]


def champion_verdict(test: float | None, table: _baselines.BaselineTable | None) -> str:
    """One line: does the best trial (chosen on validation) beat the baseline to beat on the test pairs?"""
    best = table.best if table else None
    if test is None or best is None:
        return ""
    short = table.score.short
    if test > best.test:
        return (f"the best trial beats the baseline to beat: test {short} {test:.4f} vs {best.name} {best.test:.4f} "
                f"({test - best.test:+.4f}, same test pairs)")
    return (f"the best trial does NOT beat the baseline to beat: test {short} {test:.4f} vs {best.name} "
            f"{best.test:.4f} ({test - best.test:+.4f}, same test pairs)")


def baseline_figure(study: optuna.Study, spec: StudySpec, table: _baselines.BaselineTable, path) -> bool:
    """Each finished trial's test score by trial number, with every baseline's test score on the same
    pairs as a horizontal line; the baseline to beat (best by validation) drawn solid black.

    Returns False when no trial has finished yet (nothing to draw against the lines).
    """
    from matplotlib.ticker import MaxNLocator

    from deepreg._plotting import pyplot

    plt = pyplot()
    scored = [(trial.number, trial.user_attrs.get("deepreg.test_score")) for trial in
              study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    scored = [(number, float(value)) for number, value in scored if value is not None and math.isfinite(value)]
    if not scored:
        return False
    short, best = table.score.short, table.best
    figure, axes = plt.subplots(figsize=(8, 5))
    numbers, values = zip(*scored)
    axes.plot(numbers, values, "o", color="tab:blue", label=f"trial, test {short}")
    lines = [row for row in table.rows if math.isfinite(row.test)]
    colours = plt.get_cmap("tab10")
    for index, row in enumerate(sorted(lines, key=lambda r: -r.test)):
        to_beat = best is not None and row.name == best.name
        axes.axhline(row.test, color="black" if to_beat else colours((index + 1) % 10),
                     linestyle="-" if to_beat else "--", linewidth=2.0 if to_beat else 1.0,
                     label=f"{row.name} {row.test:.3f}" + (" (to beat)" if to_beat else ""))
    try:
        chosen = study.best_trial
    except ValueError:
        chosen = None
    if chosen is not None and chosen.number in numbers:
        axes.plot([chosen.number], [values[numbers.index(chosen.number)]], "*", color="tab:orange", markersize=16,
                  label=f"best trial by validation (#{chosen.number})")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("trial")
    axes.set_ylabel(f"test {short} (same test pairs)")
    axes.set_title(f"{spec.name}: trials against the network-free baselines")
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


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
    lines = [f"refine {name}: {len(stage_studies)} studies", *aligned(rows)]
    return "\n".join(lines + [""] + advice)


def _num(value) -> str:
    return "" if value is None else f"{value:.4f}"
