"""`deepreg demo` end to end on a tiny slice of the simulated bundle: study, baselines, champion, report."""

import os
import subprocess
import sys

import mlflow
import pandas as pd
import pytest


@pytest.fixture
def demo(tmp_path):
    """`deepreg demo` as a user runs it: its own process, in a fresh folder, on a small slice of the data."""
    environment = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}

    def run():
        result = subprocess.run([sys.executable, "-m", "deepreg", "demo", "--data", "simulated", "--trials", "2",
                                 "--epochs", "2", "--max-genes", "150"], cwd=tmp_path, env=environment,
                                capture_output=True, text=True, timeout=900)
        return result.returncode, result
    return run


def test_the_demo_twice_makes_two_studies_promotes_a_champion_and_writes_a_report(demo, tmp_path):
    code, output = demo()
    assert code == 0, output.stderr[-3000:]
    assert "network-free baselines" in output.stdout and "baseline to beat" in output.stdout
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    champion = client.get_model_version_by_alias("deepreg-demo", "champion")
    trial_run = client.get_run(champion.run_id)
    assert trial_run.data.tags.get("deepreg.study", "").startswith("demo-simulated-")

    reports = list((tmp_path / "deepreg-demo").glob("demo-simulated-*/report.html"))
    assert len(reports) == 1 and f"report:     deepreg-demo/{reports[0].parent.name}/report.html" in output.stdout
    regulators = pd.read_csv(reports[0].parent / "tables" / "regulator_importance.tsv", sep="\t")
    assert len(regulators) == 60 and regulators["symbol"].notna().all()

    code, again = demo()
    assert code == 0, again.stderr[-3000:]
    studies = client.search_runs([trial_run.info.experiment_id], "tags.`deepreg.role` = 'study'")
    assert len({run.data.tags["deepreg.study"] for run in studies}) == 2
    assert client.get_model_version_by_alias("deepreg-demo", "champion").version != champion.version
