import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).parent))

from synthetic import write_compendium  # noqa: E402


@pytest.fixture
def compendium(tmp_path):
    """A tiny compendium with planted motifs and known regulators, written to files."""
    return write_compendium(tmp_path / "data")


@pytest.fixture
def data_config(compendium, tmp_path):
    from deepreg.data.config import DataConfig
    return DataConfig(bundle=None, expression=str(compendium["expression"]), promoters=str(compendium["promoters"]),
                      regulators=str(compendium["regulators"]), sequence_length=60,
                      cache_dir=str(tmp_path / "cache"))


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch):
    """A real MLflow SQLite store in a temporary folder (artifacts beside it)."""
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path}/mlruns/mlflow.db"
