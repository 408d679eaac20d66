"""Configs are frozen, typed, refuse unknown keys and round-trip through YAML and MLflow params."""

import dataclasses

import pytest
import yaml

from deepreg.errors import DeepRegError
from deepreg.training.config import RunConfig


def test_defaults_round_trip_through_yaml_and_params():
    config = RunConfig()
    assert RunConfig.from_dict(yaml.safe_load(config.to_yaml())) == config
    assert RunConfig.from_params(config.to_params()) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.training.epochs = 3


def test_dotted_overrides_and_type_coercion():
    config = RunConfig().with_updates({"model.sequence.filter_width": 100, "training.learning_rate": "1e-4",
                                       "model.l2": "1e-7"})
    assert config.model.sequence.filter_width == (100,)
    assert config.training.learning_rate == 1e-4 and config.model.l2 == 1e-7
    assert RunConfig.from_params(config.to_params()) == config


@pytest.mark.parametrize("text, message", [
    ("training:\n  epoch: 3\n", "unknown key 'training.epoch'"),
    ("model:\n  task: ranking\n", "key 'model.task': got 'ranking', expected one of 'regression', 'classification'"),
    ("training:\n  epochs: many\n", "key 'training.epochs': expected an integer"),
    ("data:\n  split_fractions: [0.5, 0.1, 0.1]\n", "data.split_fractions: expected train/validation/test fractions"),
    ("data: [1, 2\n", "is not valid YAML"),
])
def test_bad_config_files_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(DeepRegError, match=message) as error:
        RunConfig.from_files(path)
    assert str(path) in str(error.value) or "data." in message


def test_unknown_override_is_refused():
    with pytest.raises(DeepRegError, match="no such key"):
        RunConfig().with_updates({"training.epoch": 3})


def test_a_section_can_start_from_another_file(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "base.yaml").write_text("name: base\nsequence: {filters: [64], filter_width: [19]}\n")
    run = tmp_path / "run.yaml"
    run.write_text("model:\n  from: models/base.yaml\n  task: classification\n  sequence: {filters: [32]}\n")
    config = RunConfig.from_files(run)
    assert (config.model.name, config.model.task) == ("base", "classification")
    assert config.model.sequence.filters == (32,) and config.model.sequence.filter_width == (19,)
    run.write_text("model:\n  from: models/absent.yaml\n")
    with pytest.raises(DeepRegError, match="key 'from': .*absent.yaml is not a file"):
        RunConfig.from_files(run)


def test_shipped_experiment_configs_build_the_paper_models():
    from pathlib import Path
    folder = Path(__file__).resolve().parents[1] / "configs" / "experiments"
    configs = {path.stem: RunConfig.from_files(path) for path in folder.glob("*.yaml")}
    assert configs["tensor-regression"].model.fusion == "tensor"
    assert configs["tensor-classification"].model.task == "classification"
    assert configs["concat-classification"].model.sequence.pool_stride == (14,)
    assert all(config.data.bundle == "yeast" for config in configs.values())
    paper = [config for name, config in configs.items() if not name.startswith("bilinear-")]
    assert all(config.model.sequence.feature_norm for config in paper)
    assert configs["tensor-regression"].training.optimizer == "sgd"
    for split in ("random", "genes", "conditions", "genes_and_conditions"):
        config = configs[f"bilinear-{split.replace('_', '-')}"]
        assert config.data.split == split and config.model.fusion == "bilinear"
        # a test gene with training pairs is read through a per-gene term (embedding or own profile)
        per_gene = config.model.gene_embedding or config.model.profile.enabled
        assert per_gene == (split in ("random", "conditions"))
    assert configs["bilinear-random"].model.profile.decoder == "conditions"


def test_shipped_demo_studies_read_and_fit_their_data():
    from importlib import resources

    from deepreg.sweeps import load_spec
    for data in ("yeast", "simulated"):
        spec = load_spec(str(resources.files("deepreg") / "configs" / f"demo-{data}-study.yaml"))
        assert spec.base.data.bundle == data and spec.budget.trials >= 6 and spec.pruner.type != "none"
        spec.validate_points()
        spec.base.model.validate_for(spec.base.data.sequence_length)
