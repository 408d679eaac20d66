"""Promotion: register a run's model in the MLflow model registry and point the `champion` alias at it.

`promote(run_id=...)` registers any finished training run's logged model; `promote(study=...)`
picks the best finished trial run of a sweep (the child runs tagged `deepreg.study` = NAME and
`deepreg.role` = trial, scored by the study's objective: the metric and direction that its parent
run records as tags, `deepreg.tracking.tags.StudyObjective`, e.g. `validation_loss`, minimize). The new model
version carries its lineage (source run, experiment, study, trial), its scores and its data
fingerprint as tags; the alias moves to it, and the previous champion stays reachable by its
version number (also recorded on the new version). Promoting the same run again reuses its version.

A trial of a study is also compared with the study's network-free baseline to beat (metric
`baseline_to_beat` on the parent run, the best baseline by validation, scored on the same test pairs
as the trial's `deepreg.baseline_metric`, e.g. `test_pearson_r`): `Promotion.baseline` says whether
the champion beats it. Promotion goes ahead either way; the command says so when it does not.

`resolve_model(uri)` goes the other way: from any model URI (`models:/NAME@ALIAS`,
`models:/NAME/VERSION`, `models:/m-...`, `runs:/RUN/model`) to the run that trained it.
"""

from __future__ import annotations

import dataclasses
import math
import time

import mlflow

from deepreg.errors import DeepRegError
from deepreg.tracking.store import use_tracking
from deepreg.tracking.tags import (DEFAULT_OBJECTIVE, DIRECTIONS, ROLE_TAG, STATE_TAG, STUDY_TAG, TRIAL_TAG,
                                   StudyObjective, legacy_objective)

DEFAULT_MODEL_NAME = "deepreg"
DEFAULT_ALIAS = "champion"
UNFINISHED_STATES = {"pruned", "failed", "skipped", "running"}


@dataclasses.dataclass
class Promotion:
    name: str
    version: str
    alias: str
    run_id: str
    model_uri: str
    previous_version: str | None
    metric: str | None
    value: float | None
    study: str | None
    trial: str | None
    reused: bool
    baseline: "BaselineCheck | None" = None

    @property
    def registry_uri(self) -> str:
        return f"models:/{self.name}@{self.alias}"


@dataclasses.dataclass(frozen=True)
class BaselineCheck:
    """The promoted run's test score against its study's best network-free baseline (same test pairs)."""

    name: str
    to_beat: float
    champion: float
    metric: str

    @property
    def beaten(self) -> bool:
        return self.champion > self.to_beat

    def describe(self) -> str:
        verb = "beats" if self.beaten else "does not beat"
        return (f"the champion {verb} the best network-free baseline: {self.metric} {self.champion:.4f} vs "
                f"{self.name} {self.to_beat:.4f} ({self.champion - self.to_beat:+.4f}, same test pairs)")


@dataclasses.dataclass
class ModelSource:
    """Where a model URI points: the loadable URI, the training run, and the registry entry if any."""

    model_uri: str
    run_id: str | None
    name: str | None = None
    version: str | None = None
    alias: str | None = None


# --------------------------------------------------------------------------------------------------
# Finding the run to promote
# --------------------------------------------------------------------------------------------------
def study_objective(client: mlflow.MlflowClient, study: str, experiment_ids: list[str]) -> StudyObjective:
    """The metric key and direction of a study, from its parent run's objective tags (the default without one)."""
    parents = client.search_runs(experiment_ids, filter_string=f"tags.`{STUDY_TAG}` = '{study}' and "
                                 f"tags.`{ROLE_TAG}` = 'study'", max_results=10)
    for parent in parents:
        found = StudyObjective.from_tags(parent.data.tags) or legacy_objective(parent.data.params)
        if found:
            return found
    return DEFAULT_OBJECTIVE


def best_trial_run(study: str, *, tracking_uri: str | None = None, experiment: str | None = None,
                   metric: str | None = None, direction: str | None = None):
    """The finished trial run of `study` with the best objective value (and the metric and direction used)."""
    use_tracking(tracking_uri)
    client = mlflow.MlflowClient()
    experiment_ids = _experiment_ids(client, experiment)
    objective = study_objective(client, study, experiment_ids)
    metric, direction = metric or objective.metric, direction or objective.direction
    if direction not in DIRECTIONS:
        raise DeepRegError(f"--direction {direction!r}: expected minimize or maximize")
    runs = client.search_runs(experiment_ids, filter_string=f"tags.`{STUDY_TAG}` = '{study}' and "
                              "attributes.status = 'FINISHED'", max_results=50_000)
    candidates = []
    for run in runs:
        tags = run.data.tags
        if tags.get(ROLE_TAG) == "study" or TRIAL_TAG not in tags and tags.get(ROLE_TAG) != "trial":
            continue
        if tags.get(STATE_TAG, "complete").lower() in UNFINISHED_STATES or "deepreg.model_uri" not in tags:
            continue
        value = run.data.metrics.get(metric)
        if value is None or not math.isfinite(value):
            continue
        candidates.append((value if direction == "minimize" else -value, run.info.start_time or 0, run))
    if not candidates:
        known = sorted({r.data.tags.get(STUDY_TAG) for r in client.search_runs(
            experiment_ids, filter_string=f"tags.`{ROLE_TAG}` = 'study'", max_results=1000)} - {None})
        raise DeepRegError(f"study {study!r}: no finished trial run with a logged model and metric {metric!r} "
                           f"(studies with runs: {', '.join(known) or 'none'})")
    candidates.sort(key=lambda item: (item[0], item[1]))
    return candidates[0][2], metric, direction


def _experiment_ids(client: mlflow.MlflowClient, experiment: str | None) -> list[str]:
    if experiment:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise DeepRegError(f"experiment {experiment!r}: not in the tracking store")
        return [found.experiment_id]
    return [e.experiment_id for e in client.search_experiments()]


# --------------------------------------------------------------------------------------------------
# Promotion
# --------------------------------------------------------------------------------------------------
def promote(*, run_id: str | None = None, study: str | None = None, name: str = DEFAULT_MODEL_NAME,
            alias: str = DEFAULT_ALIAS, tracking_uri: str | None = None, experiment: str | None = None,
            metric: str | None = None, direction: str | None = None) -> Promotion:
    """Register the model of `run_id` (or of the best trial of `study`) and move `alias` to it."""
    if bool(run_id) == bool(study):
        raise DeepRegError("promote: give exactly one of --run RUN_ID or --study NAME")
    use_tracking(tracking_uri)
    client = mlflow.MlflowClient()
    if study:
        run, metric, direction = best_trial_run(study, tracking_uri=tracking_uri, experiment=experiment,
                                                metric=metric, direction=direction)
    else:
        try:
            run = client.get_run(run_id)
        except mlflow.exceptions.MlflowException:
            raise DeepRegError(f"run {run_id!r}: not in the tracking store") from None
        if run.info.status != "FINISHED":
            raise DeepRegError(f"run {run_id}: status {run.info.status}; only finished runs can be promoted")
        metric = metric or DEFAULT_OBJECTIVE.metric
    tags = run.data.tags
    model_uri = tags.get("deepreg.model_uri")
    if not model_uri:
        raise DeepRegError(f"run {run.info.run_id}: has no logged model (tag deepreg.model_uri); "
                           "train it with `deepreg train` or a sweep")

    _ensure_registered_model(client, name)
    previous = _alias_version(client, name, alias)
    existing = [v for v in client.search_model_versions(f"name = '{name}'") if v.run_id == run.info.run_id]
    reused = bool(existing)
    if existing:
        version = max(existing, key=lambda v: int(v.version))
    else:
        version = mlflow.register_model(model_uri, name, tags=_version_tags(run, study, metric, previous))
        version = client.get_model_version(name, version.version)
        client.update_model_version(name, version.version, description=_description(run, study, metric))
    if previous and previous != str(version.version):
        client.set_model_version_tag(name, version.version, "deepreg.previous_champion", previous)
    client.set_registered_model_alias(name, alias, version.version)
    client.set_model_version_tag(name, version.version, "deepreg.promoted_at",
                                 time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    value = run.data.metrics.get(metric) if metric else None
    check = baseline_check(client, run)
    if check is not None:
        client.set_model_version_tag(name, version.version, "deepreg.baseline_to_beat",
                                     f"{check.name} {check.metric} {check.to_beat:.6g}")
    return Promotion(name=name, version=str(version.version), alias=alias, run_id=run.info.run_id,
                     model_uri=model_uri, previous_version=previous if previous != str(version.version) else None,
                     metric=metric, value=value, study=tags.get(STUDY_TAG), trial=tags.get(TRIAL_TAG), reused=reused,
                     baseline=check)


def baseline_check(client: mlflow.MlflowClient, run) -> BaselineCheck | None:
    """The run's test score against its study's baseline to beat; None outside a study that fitted baselines."""
    parent_id = run.data.tags.get("mlflow.parentRunId")
    if not parent_id:
        return None
    try:
        parent = client.get_run(parent_id)
    except mlflow.exceptions.MlflowException:
        return None
    to_beat = parent.data.metrics.get("baseline_to_beat")
    metric = parent.data.tags.get("deepreg.baseline_metric", "test_pearson_r")
    champion = run.data.metrics.get(metric)
    if to_beat is None or champion is None or not math.isfinite(champion):
        return None
    return BaselineCheck(name=parent.data.tags.get("deepreg.baseline_name", "?"), to_beat=float(to_beat),
                         champion=float(champion), metric=metric)


def _ensure_registered_model(client: mlflow.MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description="DeepREG models: promoter sequence x regulator expression; "
                                                         "the champion alias marks the one used downstream.")


def _alias_version(client: mlflow.MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def _version_tags(run, study: str | None, metric: str | None, previous: str | None) -> dict[str, str]:
    tags = run.data.tags
    out = {"deepreg.source_run_id": run.info.run_id, "deepreg.source_experiment_id": run.info.experiment_id,
           "deepreg.source_run_name": tags.get("mlflow.runName", ""),
           "deepreg.data_fingerprint": tags.get("deepreg.data_fingerprint", run.data.params.get("data.fingerprint", "")),
           "deepreg.model_name": tags.get("deepreg.model_name", run.data.params.get("model.name", "")),
           "deepreg.data_bundle": run.data.params.get("data.bundle", ""),
           "deepreg.task": run.data.params.get("model.task", "")}
    if tags.get(STUDY_TAG):
        out[STUDY_TAG] = tags[STUDY_TAG]
        out[TRIAL_TAG] = tags.get(TRIAL_TAG, "")
        out["deepreg.study_parent_run_id"] = tags.get("mlflow.parentRunId", "")
    if metric:
        out["deepreg.selection_metric"] = metric
    if previous:
        out["deepreg.previous_champion"] = previous
    for key, value in run.data.metrics.items():
        if key.startswith(("validation_", "test_", "train_")) or key in ("epochs_run", "train_seconds"):
            out[f"metric.{key}"] = f"{value:.6g}"
    return {key: str(value)[:5000] for key, value in out.items() if value is not None}


def _description(run, study: str | None, metric: str | None) -> str:
    tags = run.data.tags
    scores = ", ".join(f"{k} {v:.4g}" for k, v in sorted(run.data.metrics.items())
                       if k.startswith(("validation_", "test_")))
    origin = (f"best trial {tags.get(TRIAL_TAG)} of study {study} by {metric}" if study
              else f"run {run.info.run_id}")
    return f"{tags.get('deepreg.model_name', 'model')} from {origin}; {scores}; data {tags.get('deepreg.data_fingerprint', '?')}"


# --------------------------------------------------------------------------------------------------
# From a model URI back to its run
# --------------------------------------------------------------------------------------------------
def resolve_model(model_uri: str, *, tracking_uri: str | None = None) -> ModelSource:
    """The training run (and registry entry) behind any model URI."""
    use_tracking(tracking_uri)
    client = mlflow.MlflowClient()
    try:
        if model_uri.startswith("models:/"):
            body = model_uri.removeprefix("models:/")
            if "@" in body:
                name, alias = body.split("@", 1)
                version = client.get_model_version_by_alias(name, alias)
                return ModelSource(model_uri, version.run_id, name, str(version.version), alias)
            if body.startswith("m-"):
                logged = client.get_logged_model(body.split("/")[0])
                return ModelSource(model_uri, logged.source_run_id)
            name, _, number = body.partition("/")
            if number.isdigit():
                version = client.get_model_version(name, number)
                return ModelSource(model_uri, version.run_id, name, str(version.version))
            raise DeepRegError(f"model {model_uri}: expected models:/NAME@ALIAS, models:/NAME/VERSION or models:/m-ID")
        if model_uri.startswith("runs:/"):
            return ModelSource(model_uri, model_uri.removeprefix("runs:/").split("/")[0])
    except mlflow.exceptions.MlflowException as error:
        raise DeepRegError(f"model {model_uri}: not found in the tracking store ({str(error).splitlines()[0]})") from None
    return ModelSource(model_uri, None)
