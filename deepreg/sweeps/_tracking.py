"""The study's MLflow parent run: the spec, the objective, the best value so far, and the summary figures.

Trial runs are children (tag `mlflow.parentRunId`) with tags `deepreg.study`, `deepreg.engine`,
`deepreg.trial_number`, `deepreg.state` and `deepreg.reason` (names in `deepreg.tracking.tags`);
the parent carries the objective as tags that the registry reads (`StudyObjective`). Nothing here
holds a lock: each worker writes its own trials' runs, and any worker may refresh the parent's summary.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import mlflow
import yaml

from deepreg.tracking.store import ensure_experiment, use_tracking
from deepreg.tracking.tags import (ENGINE_TAG, OBJECTIVE_PARAM, REASON_TAG, ROLE_TAG, STATE_TAG, STORAGE_TAG,
                                   STUDY_TAG, TRIAL_TAG, StudyObjective)

log = logging.getLogger(__name__)


def parent_run(spec, *, engine: str, tracking_uri: str, experiment: str, storage_url: str,
               run_id: str | None = None, extra_tags: Mapping[str, str] | None = None) -> str:
    """The study's parent run: `run_id` when it still exists, else the one tagged with the study, else a new one."""
    use_tracking(tracking_uri)
    experiment_id = ensure_experiment(experiment, tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    if run_id:
        try:
            client.get_run(run_id)
            return _resume(client, run_id, spec)
        except mlflow.exceptions.MlflowException:
            log.warning("parent run %s is gone; making a new one", run_id)
    found = client.search_runs([experiment_id], filter_string=(
        f"tags.`{STUDY_TAG}` = '{spec.name}' and tags.`{ROLE_TAG}` = 'study' and tags.`{ENGINE_TAG}` = '{engine}'"),
        max_results=1)
    if found:
        return _resume(client, found[0].info.run_id, spec)
    tags = {STUDY_TAG: spec.name, ROLE_TAG: "study", ENGINE_TAG: engine, STORAGE_TAG: storage_url,
            "mlflow.note.content": spec.description or f"study {spec.name}", **tracked_objective(spec).tags(),
            **(extra_tags or {})}
    run = client.create_run(experiment_id, run_name=f"{spec.name} ({engine})", tags=tags)
    params = {OBJECTIVE_PARAM: f"{spec.objective.goal} {spec.objective.label()}",
              "study.sampler": spec.sampler.type, "study.pruner": spec.pruner.type,
              "study.epochs": str(spec.epochs), "study.budget.trials": str(spec.budget.trials),
              "study.budget.minutes": str(spec.budget.minutes)}
    params.update({f"space.{p.name}": p.describe()[:6000] for p in spec.space.params})
    client.log_batch(run.info.run_id, params=[mlflow.entities.Param(k, v) for k, v in params.items()])
    client.log_text(run.info.run_id, yaml.safe_dump(spec.to_dict(), sort_keys=False), "study.yaml")
    client.log_text(run.info.run_id, spec.base.to_yaml(), "base.yaml")
    return run.info.run_id


def tracked_objective(spec) -> StudyObjective:
    """What the registry ranks the study's trial runs by: their metric `validation_METRIC` and the goal."""
    return StudyObjective(metric=f"validation_{spec.objective.metric}", direction=spec.objective.goal)


def _resume(client: mlflow.MlflowClient, run_id: str, spec) -> str:
    """An existing parent run set RUNNING again; the objective tags are (re)written for stores made before them."""
    client.update_run(run_id, status="RUNNING")
    client.log_batch(run_id, tags=[mlflow.entities.RunTag(key, value) for key, value in
                                   tracked_objective(spec).tags().items()])
    return run_id


def ui_runs_url(experiment_id: str, host: str = "http://127.0.0.1:5000") -> str:
    """The MLflow UI page of an experiment's runs table (nested trials), in the "Model training" view."""
    return f"{host}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def trial_tags(study_name: str, engine: str, number: int, *, storage_url: str, extra: Mapping[str, Any]) -> dict:
    tags = {STUDY_TAG: study_name, ENGINE_TAG: engine, ROLE_TAG: "trial", TRIAL_TAG: str(number),
            STORAGE_TAG: storage_url}
    tags.update({key: str(value) for key, value in extra.items() if value is not None})
    return tags


def trial_runs(tracking_uri: str, parent_run_id: str) -> dict[int, Any]:
    """The child runs of a study, by trial number (the latest run when a number has several)."""
    client = mlflow.MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'", max_results=50_000)
    by_number: dict[int, Any] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        number = run.data.tags.get(TRIAL_TAG)
        if number is not None and number.lstrip("-").isdigit():
            by_number[int(number)] = run
    return by_number


def mark_dead_run(tracking_uri: str, parent_run_id: str, number: int, reason: str) -> str | None:
    """Mark the RUNNING run of a dead trial as FAILED with the reason; return its id."""
    client = mlflow.MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id], filter_string=(
        f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.`{TRIAL_TAG}` = '{number}' "
        "and attributes.status = 'RUNNING'"))
    for run in runs:
        client.log_batch(run.info.run_id, tags=[mlflow.entities.RunTag(STATE_TAG, "failed"),
                                                mlflow.entities.RunTag(REASON_TAG, reason[:5000]),
                                                mlflow.entities.RunTag("deepreg.error", reason[:5000])])
        client.set_terminated(run.info.run_id, "FAILED")
    return runs[0].info.run_id if runs else None


def log_best(tracking_uri: str, parent_run_id: str, *, value: float, number: int, run_id: str | None,
             step: int, metric: str | None = None) -> None:
    """The best objective value so far as `best_value`, and under its own name (e.g. `best_validation_pearson_r`)."""
    client = mlflow.MlflowClient(tracking_uri)
    now = int(time.time() * 1000)
    if value is None or not math.isfinite(value):
        return
    keys = ["best_value"] + ([f"best_{metric.replace(' ', '_')}"] if metric else [])
    client.log_batch(parent_run_id, metrics=[mlflow.entities.Metric(key, float(value), now, step) for key in keys],
                     tags=[mlflow.entities.RunTag("deepreg.best_trial", str(number)),
                           mlflow.entities.RunTag("deepreg.best_run_id", run_id or "")])


def finish_parent(tracking_uri: str, parent_run_id: str, status: str | None) -> None:
    if status:
        mlflow.MlflowClient(tracking_uri).set_terminated(parent_run_id, status)


def log_summary(tracking_uri: str, parent_run_id: str, study, table_text: str | None = None, spec=None,
                baselines=None) -> list[str]:
    """Optuna's optimisation history, parameter importances, parallel coordinates and slice plots, as PNGs;
    with the network-free `baselines`, also the trials' test scores against them (`trials_vs_baselines`)."""
    import optuna

    from deepreg._plotting import pyplot

    plt = pyplot()  # Agg before optuna's matplotlib module imports pyplot
    from optuna.visualization import matplotlib as ovm

    client = mlflow.MlflowClient(tracking_uri)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    written: list[str] = []
    plots = {"optimization_history": ovm.plot_optimization_history, "param_importances": ovm.plot_param_importances,
             "parallel_coordinate": ovm.plot_parallel_coordinate, "slice": ovm.plot_slice,
             "intermediate_values": ovm.plot_intermediate_values}
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, plot in plots.items():
            if name != "optimization_history" and len(complete) < 2:
                continue
            try:
                axes = plot(study)
            except Exception as error:  # e.g. importances with a single distinct value
                log.info("summary plot %s skipped: %s", name, error)
                continue
            figure = _figure_of(axes)
            figure.set_size_inches(max(figure.get_size_inches()[0], 8), max(figure.get_size_inches()[1], 5))
            figure.tight_layout()
            path = Path(folder) / f"{name}.png"
            figure.savefig(path, dpi=100)
            plt.close(figure)
            client.log_artifact(parent_run_id, str(path), "summary")
            written.append(name)
        if spec is not None and baselines is not None and baselines.rows:
            from deepreg.sweeps._report import baseline_figure
            path = Path(folder) / "trials_vs_baselines.png"
            if baseline_figure(study, spec, baselines, path):
                client.log_artifact(parent_run_id, str(path), "summary")
                written.append("trials_vs_baselines")
        try:
            frame = study.trials_dataframe()
            path = Path(folder) / "trials.csv"
            frame.to_csv(path, index=False)
            client.log_artifact(parent_run_id, str(path), "summary")
        except Exception as error:
            log.info("trials table skipped: %s", error)
        if table_text:
            client.log_text(parent_run_id, table_text, "summary/study.txt")
    return written


def _figure_of(axes):
    import numpy as np
    if isinstance(axes, np.ndarray):
        return axes.flat[0].figure
    return axes.figure
