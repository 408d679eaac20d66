"""The `deepreg` command as a user runs it: real processes, real files, real MLflow store."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

ROOT = Path(__file__).resolve().parents[1]


def deepreg(*args, cwd):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    environment.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "deepreg", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=600)


def write_run_yaml(folder: Path, compendium, extra: str = "") -> Path:
    path = folder / "run.yaml"
    path.write_text(f"""
data:
  bundle: null
  expression: {compendium['expression']}
  promoters: {compendium['promoters']}
  regulators: {compendium['regulators']}
  sequence_length: 60
model:
  sequence: {{filters: [8], filter_width: [9]}}
  head: {{dense_units: [16, 16], dropout: 0.1}}
training:
  epochs: 2
  block_genes: 16
  block_conditions: 8
{extra}""")
    return path


def test_train_twice_adds_two_finished_runs(tmp_path, compendium):
    config = write_run_yaml(tmp_path, compendium)
    for _ in range(2):
        result = deepreg("train", "--config", str(config), "--set", "training.learning_rate=0.003", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db" in result.stdout
        assert "test:" in result.stdout and "pearson_r" in result.stdout
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("deepreg").experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    assert runs[0].data.params["training.learning_rate"] == "0.003"
    assert (tmp_path / "mlruns").is_dir()


@pytest.mark.parametrize("problem, expected", [
    ("missing_file", "no such file"),
    ("bad_fasta", "line 1: sequence before the first '>'"),
    ("unknown_key", "unknown key 'training.epoch'"),
    ("bad_regulator", "regulator 'NOPE' is not a gene of the expression matrix"),
])
def test_bad_input_prints_one_line_exits_2_and_leaves_nothing(tmp_path, compendium, problem, expected):
    files = dict(compendium)
    extra = ""
    if problem == "missing_file":
        files["expression"] = tmp_path / "absent.pcl"
    elif problem == "bad_fasta":
        files["promoters"] = tmp_path / "bad.fa"
        files["promoters"].write_text("ACGT\n>G0000\nACGT\n")
    elif problem == "unknown_key":
        extra = "  epoch: 3\n"
    elif problem == "bad_regulator":
        files["regulators"] = tmp_path / "regs.txt"
        files["regulators"].write_text("G0000\nNOPE\n")
    config = write_run_yaml(tmp_path, files, extra)
    result = deepreg("train", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1 and expected in error_lines[0], result.stderr[-2000:]
    assert not (tmp_path / ".deepreg-cache").exists() or not any((tmp_path / ".deepreg-cache").iterdir())
    assert not (tmp_path / "mlruns").exists()
