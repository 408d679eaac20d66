"""Configs are frozen, typed, refuse unknown keys and round-trip through YAML and MLflow params."""

import dataclasses
import os
from pathlib import Path

import pytest
import yaml

from deepreg.errors import DeepRegError
from deepreg.training.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


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


def test_a_section_can_start_from_the_same_section_of_a_whole_run_file(tmp_path):
    (tmp_path / "regression.yaml").write_text(
        "data: {split: genes}\nmodel: {name: reg, fusion: bilinear, rank: 8, head: {dense_units: []}}\n"
        "training: {epochs: 7, learning_rate: 0.002}\n")
    run = tmp_path / "run.yaml"
    run.write_text("model:\n  from: regression.yaml\n  task: classification\ntraining:\n  from: regression.yaml\n"
                   "  epochs: 3\n")
    config = RunConfig.from_files(run)
    assert (config.model.name, config.model.rank, config.model.task) == ("reg", 8, "classification")
    assert (config.training.epochs, config.training.learning_rate) == (3, 0.002)
    assert config.data.split != "genes"  # only the sections that asked for it start from the file


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


def test_a_model_file_and_a_whole_run_file_can_start_from_another(tmp_path):
    (tmp_path / "base-model.yaml").write_text("name: base\nsequence: {filters: [64], filter_width: [19]}\n")
    (tmp_path / "model.yaml").write_text("from: base-model.yaml\nsequence: {filters: [16]}\n")
    config = RunConfig.from_files(model=tmp_path / "model.yaml")
    assert config.model.name == "base" and config.model.sequence.filters == (16,)
    experiment = os.path.relpath(ROOT / "configs" / "experiments" / "tensor-regression.yaml", tmp_path)
    (tmp_path / "run.yaml").write_text(f"from: {experiment}\ntraining: {{epochs: 2}}\n")
    config = RunConfig.from_files(tmp_path / "run.yaml")
    assert config.model.fusion == "tensor" and config.training.optimizer == "sgd" and config.training.epochs == 2


def test_files_that_start_from_each_other_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("model: {from: b.yaml}\n")
    (tmp_path / "b.yaml").write_text("from: a.yaml\n")
    with pytest.raises(DeepRegError, match="a.yaml: key 'from': the files start from each other"):
        RunConfig.from_files(tmp_path / "a.yaml")


@pytest.mark.parametrize("kind, good, bad, message", [
    ("simulation", "n_genes: 300\nseed: 3\n", "n_regulators: 1000\n", "n_regulators: expected 1.."),
    ("attribution", "sequence_genes: 50\nplot_genes: [YAL001C]\n", "fold: -1\n", "attribution.fold: expected"),
])
def test_the_simulation_and_attribution_configs_read_through_the_same_loader(tmp_path, kind, good, bad, message):
    from deepreg.attribution.config import AttributionConfig
    from deepreg.data.simulate import SimulationConfig

    cls = {"simulation": SimulationConfig, "attribution": AttributionConfig}[kind]
    (tmp_path / "base.yaml").write_text(good)
    (tmp_path / "config.yaml").write_text("from: base.yaml\nseed: 1\n")
    config = cls.from_yaml(tmp_path / "config.yaml")
    assert config == cls.from_dict({**yaml.safe_load(good), "seed": 1})
    assert cls.from_params(config.to_params()) == config
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(DeepRegError, match=message) as error:
        cls.from_yaml(tmp_path / "bad.yaml")
    assert str(error.value).startswith(f"{tmp_path / 'bad.yaml'}: ")
    (tmp_path / "typo.yaml").write_text("sead: 1\n")
    with pytest.raises(DeepRegError, match=f"{tmp_path / 'typo.yaml'}: unknown key 'sead'"):
        cls.from_yaml(tmp_path / "typo.yaml")
