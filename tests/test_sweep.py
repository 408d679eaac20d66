"""Studies run in this process with real tiny training, a real journal file and a real MLflow store."""

import signal

import keras
import mlflow
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from synthetic import write_compendium

from deepreg.sweeps import (describe_refine, describe_study, load_spec, open_storage, run_keras_tuner, run_refine,
                            run_sweep)
from deepreg.tracking.tags import StudyObjective

TINY = {"model": {"sequence": {"filters": [8], "filter_width": [7]}, "head": {"dense_units": [16, 16],
                                                                              "dropout": 0.1}},
        "training": {"block_genes": 16, "block_conditions": 8, "learning_rate": 0.003, "train_metrics_genes": 32}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep-data")
    files = write_compendium(folder, n_genes=80, n_conditions=12, length=60)
    return {"bundle": None, "expression": str(files["expression"]), "promoters": str(files["promoters"]),
            "regulators": str(files["regulators"]), "sequence_length": 60, "cache_dir": str(folder / "cache")}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store and journal for the module (each test has its own study names)."""
    folder = tmp_path_factory.mktemp("sweep-store")
    uri = f"sqlite:///{folder}/mlruns/mlflow.db"
    return {"uri": uri, "storage": f"journal:{folder}/mlruns/optuna.journal", "client": mlflow.MlflowClient(uri)}


def spec_file(tmp_path, data, **values):
    path = tmp_path / f"{values['name']}.yaml"
    path.write_text(yaml.safe_dump({"data": data, "base": TINY, **values}, sort_keys=False))
    return load_spec(path)


def journal(store):
    return open_storage(store["storage"]).storage


def children(store, outcome):
    runs = store["client"].search_runs([store["client"].get_run(outcome.parent_run_id).info.experiment_id],
                                       filter_string=f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'")
    return {int(r.data.tags["deepreg.trial_number"]): r for r in runs}


def test_pruned_and_failed_trials_are_marked_and_the_study_goes_on(tmp_path, data, store):
    spec = spec_file(tmp_path, data, name="marks", epochs=3, sampler={"type": "grid"},
                     pruner={"type": "median", "startup_trials": 1, "warmup_epochs": 0},
                     space={"variant": {"choices": {
                         "good": {"training.learning_rate": 0.003},
                         "stalled": {"training.learning_rate": 1.0e-7},
                         "broken": {"training.learning_rate": 1.0e+6}}}})  # diverges: a non-finite loss
    lines = []
    outcome = run_sweep(spec, storage=store["storage"], tracking_uri=store["uri"], out=lines.append)
    study = outcome.study
    by_label = {t.params["variant"]: t for t in study.trials}
    assert len(study.trials) == 3 and outcome.trials_here == 3
    assert study.trials[0].params["variant"] == "good" and study.trials[0].user_attrs["deepreg.baseline"]
    assert by_label["good"].state == TrialState.COMPLETE
    assert by_label["stalled"].state == TrialState.PRUNED
    assert by_label["broken"].state == TrialState.FAIL
    assert "pruned at epoch 1" in by_label["stalled"].user_attrs["deepreg.reason"]

    runs = children(store, outcome)
    good, stalled, broken = (runs[by_label[k].number] for k in ("good", "stalled", "broken"))
    assert good.info.status == "FINISHED" and good.data.tags["deepreg.state"] == "finished"
    assert stalled.info.status == "KILLED" and stalled.data.tags["deepreg.state"] == "pruned"
    assert "pruned at epoch 1" in stalled.data.tags["deepreg.reason"]
    curve = store["client"].get_metric_history(stalled.info.run_id, "val_loss")
    assert [m.step for m in curve] == [1]  # the partial learning curve, up to the pruning epoch
    assert len(store["client"].get_metric_history(good.info.run_id, "val_loss")) == 3
    assert broken.info.status == "FAILED" and broken.data.tags["deepreg.state"] == "failed"
    assert broken.data.tags["deepreg.reason"]
    for run in runs.values():
        assert run.data.tags["deepreg.study"] == "marks" and run.data.params["training.epochs"] == "3"
        assert run.data.tags["mlflow.parentRunId"] == outcome.parent_run_id
    assert "config.yaml" in {a.path for a in store["client"].list_artifacts(good.info.run_id)}
    assert good.data.tags["deepreg.model_uri"].startswith("models:/")  # the trial's model

    parent = store["client"].get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["deepreg.best_trial"] == "0"
    assert StudyObjective.from_tags(parent.data.tags) == StudyObjective("validation_loss", "minimize")
    assert parent.data.metrics["best_value"] == pytest.approx(by_label["good"].value)
    summary = {a.path for a in store["client"].list_artifacts(outcome.parent_run_id, "summary")}
    assert {"summary/optimization_history.png", "summary/trials.csv", "summary/study.txt"} <= summary
    assert {"study.yaml", "base.yaml"} <= {a.path for a in store["client"].list_artifacts(outcome.parent_run_id)}

    text = describe_study(optuna.load_study(study_name="marks", storage=journal(store)))
    assert "finished baseline" in text and "pruned" in text and "failed" in text
    assert "deepreg promote --study marks" in text
    assert f"pruning saved {spec.epochs - 1}" in text
    assert any(line.startswith("trial") and "pruned" in line for line in lines)


class CtrlC(keras.callbacks.Callback):
    """Press Ctrl-C (a real SIGINT to this process) during the second epoch of the first trial."""

    def __init__(self):
        super().__init__()
        self.pressed = False

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1 and not self.pressed:
            self.pressed = True
            signal.raise_signal(signal.SIGINT)


@pytest.fixture
def python_ctrl_c():
    """Python's own SIGINT handler (KeyboardInterrupt) for the test, whatever an earlier test left installed.

    In one full-suite run the SIGINT below raised nothing; alone, and after the sweep, CLI, reliability and
    study tests, the handler is Python's default, so the test states the precondition it relies on.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_marks_the_trial_and_a_rerun_resumes_and_counts_each_trial_once(tmp_path, data, store, python_ctrl_c):
    spec = spec_file(tmp_path, data, name="resume", epochs=3, sampler={"type": "random", "seed": 3},
                     pruner="none", budget={"trials": 2},
                     space={"model.sequence.filter_width": [5, 7, 9], "model.head.dropout": {"float": [0.0, 0.5]}})
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, storage=store["storage"], tracking_uri=store["uri"], callbacks=[CtrlC()], out=print)
    study = optuna.load_study(study_name="resume", storage=journal(store))
    interrupted, queued = study.trials
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs["deepreg.state"] == "interrupted"
    assert queued.state == TrialState.WAITING and queued.params == interrupted.params
    assert queued.user_attrs["deepreg.retry_of"] == 0

    outcome = run_sweep(spec, storage=store["storage"], tracking_uri=store["uri"], out=print)
    trials = outcome.study.trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[1].params == trials[0].params and trials[1].user_attrs.get("deepreg.baseline")
    assert outcome.stopped_by == "trial budget used"  # the interrupted trial is not counted, its retry is

    runs = children(store, outcome)
    assert runs[0].info.status == "KILLED" and runs[0].data.tags["deepreg.state"] == "interrupted"
    assert runs[1].data.tags["deepreg.retry_of"] == "0"
    assert all(r.info.status != "RUNNING" for r in runs.values())
    assert store["client"].get_run(outcome.parent_run_id).info.status == "FINISHED"

    changed = spec_file(tmp_path, data, name="resume", epochs=4, sampler={"type": "random"}, budget={"trials": 2},
                        space={"model.sequence.filter_width": [5, 7, 9]})
    with pytest.raises(Exception, match="already exists with another search space, epochs"):
        run_sweep(changed, storage=store["storage"], tracking_uri=store["uri"], out=print)


def test_keras_tuner_runs_three_trials_that_all_succeed_and_appear_in_mlflow(tmp_path, data, store):
    spec = spec_file(tmp_path, data, name="kt", epochs=2, sampler={"type": "random", "seed": 1},
                     budget={"trials": 3},
                     space={"model.sequence.filter_width": [5, 7, 9], "training.optimizer": ["adam", "sgd"],
                            "training.momentum": {"float": [0.1, 0.9], "when": {"training.optimizer": "sgd"}}})
    outcome = run_keras_tuner(spec, tracking_uri=store["uri"], out=print)
    assert len(outcome.trials) == 3
    assert outcome.failed == [], outcome.failed  # keras-tuner would carry on silently: fail the test here
    runs = children(store, outcome)
    assert sorted(runs) == [t["number"] for t in outcome.trials]
    assert all(r.info.status == "FINISHED" and r.data.tags["deepreg.engine"] == "keras-tuner" for r in runs.values())
    for trial in outcome.trials:
        run = runs[trial["number"]]
        assert run.data.params["model.sequence.filter_width"] == f"[{trial['params']['model.sequence.filter_width']}]"
        assert run.data.metrics["validation_loss"] == pytest.approx(trial["value"])
    parent = store["client"].get_run(outcome.parent_run_id)
    assert parent.data.tags["deepreg.engine"] == "keras-tuner" and parent.info.status == "FINISHED"


def test_refine_runs_stages_from_the_incumbent_with_lineage_and_a_diagnosis(tmp_path, data, store):
    spec = spec_file(tmp_path, data, name="ref", epochs=3, sampler={"type": "grid"}, pruner="none",
                     noise={"seeds": 2}, diagnosis={"target": 0.05},
                     stages=[{"name": "rate", "space": {"training.learning_rate": [0.0001, 0.003]}},
                             {"name": "width", "space": {"model.sequence.filter_width": [5]}}])
    lines = []
    outcome = run_refine(spec, storage=store["storage"], tracking_uri=store["uri"], out=lines.append)
    first, second = outcome.stages
    assert first.study == "ref.1-rate" and second.study == "ref.2-width"
    assert first.diagnosis in ("underfitting", "overfitting", "on target", "balanced")
    storage = journal(store)
    stage1 = optuna.load_study(study_name="ref.1-rate", storage=storage)
    assert stage1.trials[0].user_attrs["deepreg.baseline"]  # trial 0 is the incumbent (base lr 0.003)
    assert stage1.trials[0].params["training.learning_rate"] == 0.003
    stage2 = optuna.load_study(study_name="ref.2-width", storage=storage)
    # the incumbent's own width (7) was added to the stage's choices and evaluated first
    assert stage2.trials[0].params["model.sequence.filter_width"] == 7 and len(stage2.trials) == 2
    runs = store["client"].search_runs([store["client"].get_experiment_by_name("deepreg").experiment_id],
                                       filter_string="tags.`deepreg.stage` = 'width' and tags.`deepreg.role` = 'trial'")
    assert len(runs) == 2 and all(r.data.tags["deepreg.refine"] == "ref" for r in runs)
    incumbent_runs = {first.incumbent_run_id}
    assert {r.data.tags["deepreg.parent_config"] for r in runs} == incumbent_runs
    assert any("diagnosis:" in line for line in lines) and "final incumbent" in lines[-2]
    assert stage1.user_attrs["deepreg.refine.decision"]["stage"] == "rate"
    table = describe_refine("ref", ["ref.1-rate", "ref.2-width"], open_storage(store["storage"]))
    assert "ref.1-rate" in table and first.diagnosis in table
