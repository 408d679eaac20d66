"""Training on planted data beats trivial predictors; the MLflow run holds what a reader needs."""

import mlflow
import numpy as np
import pytest

from deepreg.data.splits import TEST
from deepreg.models.config import HeadConfig, ModelConfig, SequenceConfig
from deepreg.training.config import TrainingConfig
from deepreg.training.evaluate import predict_matrix
from deepreg.training.run import RunConfig, load_model, tracked_training

TINY_MODEL = ModelConfig(sequence=SequenceConfig(filters=(12,), filter_width=(9,)),
                         head=HeadConfig(dense_units=(32, 32), dropout=0.1))
TINY_TRAINING = TrainingConfig(epochs=10, block_genes=16, block_conditions=8, learning_rate=3e-3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from synthetic import tiny_run_config, write_compendium

    folder = tmp_path_factory.mktemp("trained")
    files = write_compendium(folder / "data", n_genes=200, n_conditions=24)
    uri = f"sqlite:///{folder}/mlruns/mlflow.db"
    config = tiny_run_config(folder, files, filters=12, width=9, dense=(32, 32), epochs=10, block_conditions=8)
    run = tracked_training(config, experiment="test", tracking_uri=uri, verbose=0)
    return run, config, uri


def test_short_training_beats_predicting_zero_on_held_out_pairs(trained):
    run, config, _ = trained
    dataset = run.dataset
    split = dataset.split(config.data)
    labels = dataset.labels("regression", config.data)
    test_pairs = (split == TEST) & ~np.isnan(labels)
    zero_mse = float(np.mean(labels[test_pairs] ** 2))
    scores = run.result.scores["test"]
    assert scores["pairs"] == int(test_pairs.sum())
    assert scores["mse"] < 0.5 * zero_mse, (scores, zero_mse)
    assert scores["pearson_r"] > 0.8


def test_mlflow_run_holds_params_curves_figures_and_model(trained):
    run, config, uri = trained
    client = mlflow.MlflowClient(uri)
    record = client.get_run(run.run_id)
    assert record.info.status == "FINISHED"
    params = record.data.params
    assert params["model.sequence.filters"] == "[12]" and params["training.epochs"] == "10"
    assert params["data.fingerprint"] == run.dataset.fingerprint
    restored = RunConfig.from_params({k: v for k, v in params.items() if k != "data.fingerprint"})
    assert restored == config
    curve = client.get_metric_history(run.run_id, "val_loss")
    assert [m.step for m in curve] == list(range(1, run.result.epochs_run + 1))
    assert curve[-1].value < curve[0].value
    assert len(client.get_metric_history(run.run_id, "train_mse")) == run.result.epochs_run
    assert record.data.metrics["test_pearson_r"] == pytest.approx(run.result.scores["test"]["pearson_r"])
    artifacts = {a.path for a in client.list_artifacts(run.run_id)}
    assert {"config.yaml", "data_summary.json", "scores.json", "figures"} <= artifacts
    figures = {a.path for a in client.list_artifacts(run.run_id, "figures")}
    assert figures == {"figures/learning_curves.png", "figures/test_predicted_vs_observed.png"}


def test_logged_model_reloads_and_predicts_the_same_values(trained):
    run, _, uri = trained
    mlflow.set_tracking_uri(uri)
    reloaded = load_model(run.model_uri)
    dataset = run.dataset
    before = predict_matrix(run.result.model, dataset.sequences, dataset.regulator_inputs(), np.arange(30))
    after = predict_matrix(reloaded, dataset.sequences, dataset.regulator_inputs(), np.arange(30))
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)


def test_classification_head_learns_three_classes(data_config, tracking_uri):
    model = ModelConfig(**{**TINY_MODEL.__dict__, "task": "classification"})
    config = RunConfig(data=data_config, model=model, training=TrainingConfig(epochs=6, block_genes=16,
                                                                                block_conditions=8, learning_rate=3e-3))
    run = tracked_training(config, experiment="test", tracking_uri=tracking_uri, verbose=0)
    test = run.result.scores["test"]
    labels = run.dataset.labels("classification", data_config)
    split = run.dataset.split(data_config)
    majority = np.mean(labels[(split == TEST) & ~np.isnan(labels)] == 1)
    assert test["accuracy"] > majority + 0.05, (test["accuracy"], majority)
    assert np.asarray(test["confusion_percent"]).sum() == pytest.approx(100, abs=0.1)
    figures = {a.path for a in mlflow.MlflowClient(tracking_uri).list_artifacts(run.run_id, "figures")}
    assert "figures/test_confusion.png" in figures


def test_a_diverging_run_stops_at_once_and_is_marked_failed_with_its_error(data_config, tracking_uri):
    from deepreg.training.train import TrainingDiverged

    training = TrainingConfig(epochs=3, block_genes=16, block_conditions=8, optimizer="sgd", learning_rate=1e12)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step \d+; lower training.learning_rate \(now 1e\+12"):
        tracked_training(RunConfig(data=data_config, model=TINY_MODEL, training=training),
                         experiment="test", tracking_uri=tracking_uri, verbose=0)
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert runs[0].info.status == "FAILED"
    assert runs[0].data.tags["deepreg.error"].startswith("TrainingDiverged: training diverged")
