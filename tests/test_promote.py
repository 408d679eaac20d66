"""`deepreg promote`: registry versions, the champion alias, lineage tags, and picking a study's best trial."""

import mlflow
import pytest

from deepreg.cli import main
from deepreg.errors import DeepRegError
from deepreg.tracking.registry import promote, resolve_model, study_objective
from deepreg.tracking.tags import DEFAULT_OBJECTIVE, StudyObjective


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny tracked training run in a fresh store (shared by the tests of this module)."""
    from synthetic import tiny_run_config, write_compendium

    from deepreg.training.run import tracked_training

    folder = tmp_path_factory.mktemp("promote")
    files = write_compendium(folder / "data")
    uri = f"sqlite:///{folder}/mlruns/mlflow.db"
    config = tiny_run_config(folder, files, filters=4, dense=(8,), dropout=0.5, epochs=1, block_genes=32,
                             learning_rate=1e-3)
    run = tracked_training(config, experiment="promote-tests", tracking_uri=uri, verbose=0)
    return {"uri": uri, "run": run}


def _copy_run(uri, source_run_id, tags, metrics, experiment="promote-tests"):
    """A finished run that points at the same logged model, with other tags and metrics (cheap study trials)."""
    client = mlflow.MlflowClient(uri)
    source = client.get_run(source_run_id)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    run = client.create_run(experiment_id, tags={**tags, "deepreg.model_uri": source.data.tags["deepreg.model_uri"],
                                                 "deepreg.data_fingerprint": "fp-test"})
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def test_promote_run_sets_alias_lineage_and_keeps_previous(trained, capsys):
    uri, run = trained["uri"], trained["run"]
    assert main(["promote", "--run", run.run_id, "--tracking-uri", uri, "--name", "unit"]) == 0
    assert "alias 'champion' -> version 1" in capsys.readouterr().out
    client = mlflow.MlflowClient(uri)
    version = client.get_model_version_by_alias("unit", "champion")
    assert version.run_id == run.run_id
    assert version.tags["deepreg.source_run_id"] == run.run_id
    assert version.tags["deepreg.data_fingerprint"] == run.dataset.fingerprint
    assert float(version.tags["metric.validation_loss"]) > 0
    source = resolve_model("models:/unit@champion", tracking_uri=uri)
    assert (source.run_id, source.version, source.alias) == (run.run_id, "1", "champion")

    again = promote(run_id=run.run_id, name="unit", tracking_uri=uri)
    assert again.reused and again.version == "1" and again.previous_version is None

    other = _copy_run(uri, run.run_id, {"deepreg.model_name": "other"}, {"validation_loss": 0.5})
    second = promote(run_id=other, name="unit", tracking_uri=uri)
    assert second.version == "2" and second.previous_version == "1"
    assert client.get_model_version("unit", "2").tags["deepreg.previous_champion"] == "1"
    assert str(client.get_model_version_by_alias("unit", "champion").version) == "2"
    assert client.get_model_version("unit", "1").run_id == run.run_id  # the old champion stays reachable


def test_promote_study_picks_best_finished_trial(trained):
    uri, run = trained["uri"], trained["run"]
    client = mlflow.MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("promote-tests").experiment_id
    objective = StudyObjective("validation_pearson_r", "maximize")
    parent = client.create_run(experiment_id, tags={"deepreg.study": "width", "deepreg.role": "study",
                                                    **objective.tags()})
    client.set_terminated(parent.info.run_id, "FINISHED")
    trial = {"deepreg.study": "width", "deepreg.role": "trial", "mlflow.parentRunId": parent.info.run_id}
    worse = _copy_run(uri, run.run_id, {**trial, "deepreg.trial_number": "0"}, {"validation_pearson_r": 0.4})
    best = _copy_run(uri, run.run_id, {**trial, "deepreg.trial_number": "1"}, {"validation_pearson_r": 0.7})
    _copy_run(uri, run.run_id, {**trial, "deepreg.trial_number": "2", "deepreg.state": "pruned"},
              {"validation_pearson_r": 0.9})
    result = promote(study="width", name="study-model", tracking_uri=uri)
    assert result.run_id == best != worse
    assert (result.metric, result.trial, result.study) == ("validation_pearson_r", "1", "width")
    version = client.get_model_version("study-model", result.version)
    assert version.tags["deepreg.study"] == "width" and version.tags["deepreg.trial_number"] == "1"
    assert version.tags["deepreg.study_parent_run_id"] == parent.info.run_id

    with pytest.raises(DeepRegError, match="no finished trial"):
        promote(study="no-such-study", tracking_uri=uri)
    assert main(["promote", "--study", "no-such-study", "--tracking-uri", uri]) == 2


def test_a_study_written_before_the_objective_tags_is_ranked_by_its_objective_param(trained):
    client = mlflow.MlflowClient(trained["uri"])
    experiment_id = client.get_experiment_by_name("promote-tests").experiment_id
    parent = client.create_run(experiment_id, tags={"deepreg.study": "old-store", "deepreg.role": "study"})
    client.log_param(parent.info.run_id, "study.objective", "maximize validation pearson r")
    assert study_objective(client, "old-store", [experiment_id]) == StudyObjective("validation_pearson_r", "maximize")
    assert study_objective(client, "no-parent", [experiment_id]) == DEFAULT_OBJECTIVE

