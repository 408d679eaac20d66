"""Network-free baselines inside a study, and the study seen through a real `mlflow server`.

One tiny study (real Optuna journal, real MLflow SQLite store, real Keras training for two epochs)
is shared by the module; each test reads it from a different side: the parent run, `study show`,
`promote`, and the MLflow REST API of a server started over the store.
"""

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import mlflow
import numpy as np
import optuna
import pytest
import yaml

from synthetic import tiny_run_config, write_compendium

from deepreg.cli import main
from deepreg.data.dataset import load_dataset
from deepreg.errors import DeepRegError
from deepreg import baselines as bl
from deepreg.sweeps import describe_study, load_spec, open_storage, run_sweep

TINY = {"model": {"sequence": {"filters": [8], "filter_width": [7]}, "head": {"dense_units": [16, 16],
                                                                              "dropout": 0.1}},
        "training": {"block_genes": 16, "block_conditions": 8, "learning_rate": 0.003, "train_metrics_genes": 32}}
EPOCHS = 2


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study-baselines")
    files = write_compendium(folder / "data", n_genes=80, n_conditions=12, length=60)
    data = {"bundle": None, "expression": str(files["expression"]), "promoters": str(files["promoters"]),
            "regulators": str(files["regulators"]), "sequence_length": 60, "cache_dir": str(folder / "cache")}
    path = folder / "widths.yaml"
    path.write_text(yaml.safe_dump({"name": "widths", "data": data, "base": TINY, "epochs": EPOCHS,
                                    "objective": {"metric": "pearson_r"}, "sampler": {"type": "grid"},
                                    "pruner": "none", "space": {"model.sequence.filter_width": [5, 7]}}))
    spec = load_spec(path)
    uri = f"sqlite:///{folder}/mlruns/mlflow.db"
    lines = []
    outcome = run_sweep(spec, storage=f"journal:{folder}/mlruns/optuna.journal", tracking_uri=uri,
                        out=lines.append)
    return {"spec": spec, "outcome": outcome, "uri": uri, "lines": lines, "folder": folder, "files": files,
            "client": mlflow.MlflowClient(uri)}


def independent_baselines(spec):
    """The baselines fitted straight from deepreg.baselines on the spec's data and split."""
    dataset = load_dataset(spec.base.data)
    expression = dataset.labels("regression", spec.base.data).astype(np.float64)
    split = dataset.split(spec.base.data)
    fitted = bl.fit_all_baselines(expression, split, dataset.regulator_inputs(), dataset.sequences)
    validation = bl.score_baselines(fitted, expression, split, bl.VALIDATION).set_index("name")
    test = bl.score_baselines(fitted, expression, split, bl.TEST).set_index("name")
    return validation, test


def test_the_parent_run_carries_every_baseline_and_the_one_to_beat(study):
    client, outcome = study["client"], study["outcome"]
    parent = client.get_run(outcome.parent_run_id)
    validation, test = independent_baselines(study["spec"])
    metrics = parent.data.metrics
    for name in bl.BASELINE_NAMES:
        if math.isfinite(test.loc[name, "r"]):  # the zero baseline is constant: it has no r
            assert metrics[f"baseline_test_r/{name}"] == pytest.approx(test.loc[name, "r"])
            assert metrics[f"baseline_val_r/{name}"] == pytest.approx(validation.loc[name, "r"])
    best = validation["r"].dropna().idxmax()
    assert parent.data.params["baseline_name"] == parent.data.tags["deepreg.baseline_name"] == best
    assert metrics["baseline_to_beat"] == pytest.approx(test.loc[best, "r"])
    assert parent.data.tags["deepreg.baseline_metric"] == "test_pearson_r"
    assert "test pairs of the random split" in parent.data.tags["deepreg.baseline_pairs"]
    summary = {a.path for a in client.list_artifacts(outcome.parent_run_id, "summary")}
    assert {"summary/baselines.txt", "summary/trials_vs_baselines.png"} <= summary
    assert metrics["best_validation_pearson_r"] == pytest.approx(outcome.study.best_value)
    # the baselines were fitted before the first trial, and printed there
    first_trial = next(i for i, line in enumerate(study["lines"]) if line.startswith("trial 0"))
    assert any("baseline to beat" in line for line in study["lines"][:first_trial])
    # what each trial tried is in its run name, and the experiment opens as model training
    names = sorted(r.info.run_name for r in client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'"))
    assert names == ["widths#0 filter_width=7", "widths#1 filter_width=5"]
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_study_show_prints_the_baselines_above_the_trials_with_each_margin(study):
    outcome = study["outcome"]
    text = describe_study(optuna.load_study(study_name="widths", storage=open_storage(outcome.storage_url).storage))
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("#  state"))
    baselines = next(i for i, line in enumerate(lines) if line.startswith("network-free baselines"))
    assert baselines < header
    assert all(any(line.strip().startswith(name) for line in lines[baselines:header]) for name in bl.BASELINE_NAMES)
    to_beat = study["client"].get_run(outcome.parent_run_id).data.metrics["baseline_to_beat"]
    assert "vs baseline" in lines[header]
    for trial in outcome.study.trials:
        row = lines[header + 1 + trial.number]
        test = trial.user_attrs["deepreg.test_score"]
        assert re.search(rf"{test:.4f}\s+{re.escape(f'{test - to_beat:+.4f}')}\s", row), row
    assert "the best trial does NOT beat the baseline to beat" in text or "the best trial beats" in text


def test_promote_says_when_the_champion_does_not_beat_the_baseline_and_promotes_anyway(study, capsys):
    client, outcome = study["client"], study["outcome"]
    to_beat = client.get_run(outcome.parent_run_id).data.metrics["baseline_to_beat"]
    champion = client.get_run(outcome.study.best_trial.user_attrs["deepreg.run_id"])
    # The compendium is linear in the regulators: a ridge on them is near perfect, two epochs are not.
    assert champion.data.metrics["test_pearson_r"] < to_beat
    assert main(["promote", "--study", "widths", "--tracking-uri", study["uri"], "--name", "widths-model"]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if "does not beat the best network-free baseline" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning:") and "promoted anyway" in warnings[0]
    version = client.get_model_version_by_alias("widths-model", "champion")
    assert version.run_id == champion.info.run_id
    assert version.tags["deepreg.baseline_to_beat"].startswith(client.get_run(outcome.parent_run_id)
                                                               .data.tags["deepreg.baseline_name"])


def test_the_baselines_command_prints_the_table_for_a_run_config(study, tmp_path, capsys):
    config = tiny_run_config(study["folder"], study["files"])
    path = tmp_path / "run.yaml"
    path.write_text(config.to_yaml())
    assert main(["baselines", "--config", str(path), "--skip", "cis_kmer_ridge", "--skip",
                 "cis_kmer_proximal_ridge"]) == 0
    captured = capsys.readouterr()
    # the study fitted them on the same data and split: read back from the data cache, not refitted
    assert "[6/6] fitting trans_ridge (cached)" in captured.err
    assert "baseline to beat:" in captured.out and "cis_kmer_ridge" not in captured.out
    parent = study["client"].get_run(study["outcome"].parent_run_id)
    assert f"test r {parent.data.metrics['baseline_to_beat']:.4f}" in captured.out
    assert main(["baselines", "--config", str(path), "--set", "data.split_seed=5", "--only", "additive"]) == 0
    assert "[1/1] fitting additive ...\n" in capsys.readouterr().err  # another split: fitted again
    assert main(["baselines", "--config", str(path), "--only", "no_such_baseline"]) == 2


def test_a_spec_chooses_its_baselines_and_rejects_unknown_names(study, tmp_path):
    raw = {**study["spec"].to_dict(), "name": "choose"}
    skip = {**raw, "baselines": {"skip": ["cis_kmer_ridge", "cis_kmer_proximal_ridge"]}}
    assert "cis_kmer_ridge" not in load_spec(_write(tmp_path, skip)).baselines
    assert load_spec(_write(tmp_path, {**raw, "baselines": False})).baselines == ()
    assert load_spec(_write(tmp_path, {**raw, "baselines": ["additive", "zero"]})).baselines == ("zero", "additive")
    with pytest.raises(DeepRegError, match="key 'baselines.skip': unknown baseline 'ridge'"):
        load_spec(_write(tmp_path, {**raw, "baselines": {"skip": ["ridge"]}}))


def _write(folder, values):
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


# --------------------------------------------------------------------------------------------------
# the study through a real MLflow server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(study, tmp_path):
    """`mlflow server` over the study's store on 127.0.0.1 (a free port); killed, with its children, at the end."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(tmp_path / "server.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", study["uri"],
                                    "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                                   start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process, tmp_path / "server.log")
        yield base
    finally:
        stop_process_group(process)


def wait_until_up(base: str, process: subprocess.Popen, log_path, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"mlflow server not up after {seconds:.0f} s: {log_path.read_text()[-2000:]}")


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left of it."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sent)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
            os.killpg(process.pid, 0)  # children still alive?
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def rest(base: str, path: str, body: dict | None = None, **query) -> dict:
    url = f"{base}/api/2.0/mlflow/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_mlflow_server_shows_the_trials_nested_with_params_and_learning_curves(study, server):
    outcome = study["outcome"]
    parent = rest(server, "runs/get", run_id=outcome.parent_run_id)["run"]
    experiment_id = parent["info"]["experiment_id"]
    experiment = rest(server, "experiments/get", experiment_id=experiment_id)["experiment"]
    assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in experiment["tags"]
    assert {m["key"] for m in parent["data"]["metrics"]} >= {"baseline_to_beat", "best_validation_pearson_r"}

    found = rest(server, "runs/search", {"experiment_ids": [experiment_id],
                                         "filter": f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'"})
    children = {run["info"]["run_name"]: run for run in found["runs"]}
    assert len(children) == len(outcome.study.trials) == 2
    for trial in outcome.study.trials:
        width = trial.params["model.sequence.filter_width"]
        run = children[f"widths#{trial.number} filter_width={width}"]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert params["model.sequence.filter_width"] == f"[{width}]" and params["training.epochs"] == str(EPOCHS)
        for key in ("val_loss", "val_pearson_r", "train_mse"):
            history = rest(server, "metrics/get-history", run_id=run["info"]["run_id"], metric_key=key)["metrics"]
            assert [m["step"] for m in sorted(history, key=lambda m: m["step"])] == list(range(1, EPOCHS + 1))
        final = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert final["validation_pearson_r"] == pytest.approx(trial.value)
