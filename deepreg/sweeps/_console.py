"""What a sweep prints and how it names its trials: the study's header, one line per trial ended,
the baselines' table, and the trial run names shown in MLflow.

Only text is made here; the engines decide when to print it (through their `out`, `echo` by
default) and what to record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from deepreg.sweeps._attrs import REASON_ATTR

if TYPE_CHECKING:  # _baselines prints its table with `aligned`, so it is imported where used
    from optuna.trial import FrozenTrial

    from deepreg.sweeps._baselines import BaselineTable
    from deepreg.sweeps._spec import StudySpec


def echo(text: str) -> None:
    print(text, flush=True)


def short_key(key: str) -> str:
    """'model.filter_width' -> 'filter_width': a parameter as tables and run names show it."""
    return key.rsplit(".", 1)[-1] if key.count(".") else key


def show_value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def params_text(params: Mapping[str, Any]) -> str:
    """'filter_width=9, dropout=0.359'."""
    return ", ".join(f"{short_key(key)}={show_value(value)}" for key, value in params.items())


def trial_run_name(study: str, number: int | str, chosen: Mapping[str, Any]) -> str:
    """'width#3 filter_width=9, dropout=0.359': what the trial tried, readable in MLflow's tables and legends."""
    values = params_text(chosen)
    return f"{study}#{number} {values}"[:240].rstrip() if values else f"{study}#{number}"


def aligned(rows: Sequence[Sequence[Any]], indent: str = "") -> list[str]:
    """Rows of cells (the first one a header) as lines of left-aligned columns two spaces apart."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return [indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]


def indented(text: str, prefix: str = "  ") -> str:
    """Every line of `text` behind `prefix` (the baselines' table under a study's header)."""
    return "\n".join(prefix + line for line in text.splitlines())


def study_header(spec: StudySpec, *, verb: str, done: int, budget: int | None, storage_url: str,
                 parent_run_id: str, worker: bool) -> list[str]:
    """The lines a process prints when it creates, resumes or joins a study (`storage_url` redacted)."""
    trials = f"{budget} trials" if budget is not None else "no trial limit"
    minutes = f", {spec.budget.minutes:g} min per process" if spec.budget.minutes else ""
    lines = [f"study {spec.name} {verb} ({done} trials done; budget {trials}{minutes}; "
             f"{spec.objective.goal} {spec.objective.label()})",
             f"  storage {storage_url}; MLflow parent run {parent_run_id}"]
    if not worker:
        lines.append(f"  more workers: deepreg worker --study {spec.name} --storage {storage_url}")
    return lines


def finished_line(trial: FrozenTrial, spec: StudySpec, baselines: BaselineTable | None) -> str:
    """'trial 3 finished: validation loss 0.4123 (12 epochs, 40 s), test r ... dropout=0.359'."""
    epochs = trial.user_attrs.get("deepreg.epochs_run")
    return (f"trial {trial.number} finished: {spec.objective.label()} {trial.value:.4f} "
            f"({epochs} epochs, {trial.user_attrs.get('deepreg.seconds', 0):.0f} s)"
            f"{vs_baseline(trial, spec, baselines)} {params_text(trial.params)}")


def ended_line(trial: FrozenTrial, state: str) -> str:
    """'trial 4 pruned: pruned at epoch 2 by the median pruner (...) dropout=0.5', for a trial that did not finish."""
    return f"trial {trial.number} {state}: {trial.user_attrs.get(REASON_ATTR, '')} {params_text(trial.params)}".rstrip()


def vs_baseline(trial: FrozenTrial, spec: StudySpec, table: BaselineTable | None) -> str:
    """', test r 0.6100 (+0.0300 vs baseline ridge)': reported only, trials are chosen on validation."""
    from deepreg.sweeps import _baselines

    test = trial.user_attrs.get("deepreg.test_score")
    if test is None:
        return ""
    short = _baselines.SCORES[spec.base.model.task].short
    margin = _baselines.margin_text(test, table)
    return f", test {short} {test:.4f}" + (f" ({margin} vs baseline {table.best.name})" if margin else "")
