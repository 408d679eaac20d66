"""Study specs, search spaces and worker liveness, without training anything."""

import dataclasses
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from deepreg._process import process_start
from deepreg.errors import DeepRegError
from deepreg.sweeps import Diagnosis, StudySpec, diagnose, liveness, load_spec, open_storage

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "sweeps").glob("*.yaml"))


def test_the_notebook_questions_are_shipped():
    names = {path.stem for path in SHIPPED}
    assert {"filter-width", "pooling", "depth", "regularisation", "fusion", "refine"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_point_of_every_shipped_spec_is_a_valid_run_config_that_builds(path):
    from deepreg.models.build import build_model

    spec = load_spec(path)
    assert spec.name == path.stem
    assert spec.validate_points() >= 2
    models = {}
    for space in [spec.space] + [stage.space for stage in spec.stages]:
        for overrides in space.points(spec.base.to_dict()):
            model = spec.base.with_updates(overrides).model
            models[_without_rates(model).to_yaml()] = model  # rates do not change the architecture
    for model in models.values():  # each distinct architecture once (the bundled data: 1000 bp, 60 regulators)
        sizes = {"n_genes": 50, "n_conditions": 20} if model.uses_gene_index else {}
        built = build_model(model, 1000, 60, **sizes)
        assert built.count_params() < 60_000_000, (path.stem, model)


RATE_FIELDS = {"l1", "l2", "dropout", "mask_rate"}


def _without_rates(config):
    """The config with every regularisation rate (at any depth) set to 0: its architecture alone."""
    changes = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name in RATE_FIELDS and isinstance(value, float):
            changes[field.name] = 0.0
        elif dataclasses.is_dataclass(value):
            changes[field.name] = _without_rates(value)
    return dataclasses.replace(config, **changes)


def write(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


BASE = """
name: s
data: {bundle: simulated}
base: {model: {sequence: {filters: [8], filter_width: [7]}}, training: {epochs: 2}}
budget: {trials: 3}
"""


@pytest.mark.parametrize("space, message", [
    ("space: {model.sequence.width: [1, 2]}", "'model.sequence.width' is not a config key"),
    ("space: {model.l1: {float: [1e-3, 1e-9], log: true}}", "expected low < high"),
    ("space: {model.l1: {float: [0, 1], log: true}}", "log scale needs a positive low bound"),
    ("space: {model.l1: {between: [0, 1]}}", "unknown field 'between'"),
    ("space: {training.momentum: {float: [0, 1], when: {training.optimiser: sgd}}}",
     "'training.optimiser' is neither an earlier parameter"),
    ("space: {training.optimizer: [adam, sgd], training.momentum: {float: [0, 1], when: {training.optimizer: sdg}}}",
     "'sdg' is not one of the choices of 'training.optimizer'"),
    ("space: {model.l1: {float: [0.0, 1.0]}}\nsampler: grid", "grid sampler needs choices or ints"),
    ("space: {model.head.dropout: [0.1, 0.1]}", "the choices repeat a value"),
    ("space: {model.head.dropout: [0.1, 0.2]}\nsampler: {type: bayes}", "key 'sampler.type'"),
    ("space: {model.head.dropout: [0.1, 0.2]}\nobjective: {metric: accuracy}", "accuracy needs model.task"),
    ("space: {model.head.dropout: [0.1, 0.2]}\nsurprise: 1", "unknown key 'surprise'"),
    ("space: {model.head.dropout: [0.1, 0.2]}\nreliability: {heartbeat_seconds: 0}", "reliability: expected"),
    ("space: {model.head.dropout: [0.1, 0.2]}\nstages: [{name: a, space: {model.l1: [0, 1]}, seed: 1}]",
     "stage 1: unknown key 'seed'"),
])
def test_spec_mistakes_are_one_line_errors_naming_the_file_and_key(tmp_path, space, message):
    path = write(tmp_path, BASE + space)
    with pytest.raises(DeepRegError) as error:
        load_spec(path)
    assert message in str(error.value) and str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_a_spec_can_start_from_an_experiment_config_with_from(tmp_path):
    experiment = ROOT / "configs" / "experiments" / "tensor-regression.yaml"
    assert "from:" in experiment.read_text()
    spec = load_spec(write(tmp_path, f"name: s\ndata: {{bundle: simulated}}\nbase: {experiment}\n"
                                     "budget: {trials: 2}\nspace: {model.head.dropout: [0.1, 0.2]}\n"))
    assert spec.base.model.name == "single-layer-tensor" and spec.base.model.sequence.feature_norm
    assert spec.base.training.optimizer == "sgd" and spec.base.data.bundle == "simulated"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "small.yaml").write_text("name: small\nsequence: {filters: [8], filter_width: [7]}\n")
    (tmp_path / "run.yaml").write_text("model: {from: models/small.yaml, head: {dense_units: [16]}}\n"
                                       "training: {epochs: 2}\n")
    inline = load_spec(write(tmp_path, "name: s\ndata: {bundle: simulated}\nbudget: {trials: 2}\n"
                                       "base: {from: run.yaml, training: {learning_rate: 0.01}}\n"
                                       "space: {model.head.dropout: [0.1, 0.2]}\n"))
    assert (inline.base.model.name, inline.base.model.head.dense_units) == ("small", (16,))
    assert (inline.base.training.epochs, inline.base.training.learning_rate) == (2, 0.01)
    assert StudySpec.from_dict(inline.to_dict(), source="stored").base == inline.base


def test_a_point_that_breaks_the_config_is_reported_with_the_point(tmp_path):
    spec = load_spec(write(tmp_path, BASE + "space: {model.sequence.conv_layers: [1, 2], "
                                        "model.sequence.filters: {choices: [[8, 8, 8]]}}"))
    with pytest.raises(DeepRegError, match="clash with model.sequence.conv_layers.*at the point"):
        spec.validate_points()


def test_optuna_suggestions_follow_conditions_and_decode_list_choices(tmp_path):
    spec = load_spec(write(tmp_path, BASE + """
space:
  model.head.dense_units: {choices: [[16, 16], [32]]}
  training.optimizer: [adam, sgd]
  training.momentum: {float: [0.1, 0.9], when: {training.optimizer: sgd}}
  training.learning_rate: {float: [1.0e-4, 1.0e-2], log: true}
  model.l2: {fixed: 1.0e-7}
"""))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        chosen, overrides = spec.space.suggest(trial, spec.base.to_dict())
        study.tell(trial, 0.0)
        assert overrides["model.l2"] == 1e-7
        assert overrides["model.head.dense_units"] in ([16, 16], [32])
        assert ("training.momentum" in overrides) == (overrides["training.optimizer"] == "sgd")
        config = spec.base.with_updates(overrides)
        assert 1e-4 <= config.training.learning_rate <= 1e-2
        seen.add(overrides["training.optimizer"])
    assert seen == {"adam", "sgd"}
    params, why = spec.space.baseline(spec.base.to_dict())
    assert params is None and "dense_units" in why  # the base head (512, 512) is not among the choices


def test_the_baseline_is_found_among_choices_and_variants():
    spec = load_spec(ROOT / "sweeps" / "depth.yaml")
    params, _ = spec.space.baseline(spec.base.to_dict())
    assert params == {"depth": "one"}
    spec = load_spec(ROOT / "sweeps" / "regularisation.yaml")
    params, _ = spec.space.baseline(spec.base.to_dict())
    assert params["model.l1"] == 0.0 and params["training.optimizer"] == "adam"
    assert "training.momentum" not in params and params["training.learning_rate"] == pytest.approx(1e-3)


def test_the_space_compiles_to_keras_tuner_with_conditional_scopes(tmp_path):
    import keras_tuner as kt

    spec = load_spec(write(tmp_path, BASE + """
space:
  model.head.dense_units: {choices: [[16, 16], [32]]}
  training.optimizer: [adam, sgd]
  training.momentum: {float: [0.1, 0.9], when: {training.optimizer: sgd}}
  model.sequence.conv_layers: {int: [1, 3]}
"""))
    hp = kt.HyperParameters()
    spec.space.declare_keras_tuner(hp, spec.base.to_dict())
    assert {p.name for p in hp.space} == {"model.head.dense_units", "training.optimizer", "training.momentum",
                                          "model.sequence.conv_layers"}
    hp.values["training.optimizer"] = "adam"
    chosen, overrides = spec.space.from_keras_tuner(hp, spec.base.to_dict())
    assert "training.momentum" not in overrides and overrides["model.head.dense_units"] in ([16, 16], [32])
    hp.values["training.optimizer"] = "sgd"
    hp.values["training.momentum"] = 0.5
    _, overrides = spec.space.from_keras_tuner(hp, spec.base.to_dict())
    assert overrides["training.momentum"] == 0.5


def test_the_resolved_spec_round_trips_through_the_study_storage(tmp_path):
    spec = load_spec(ROOT / "sweeps" / "regularisation.yaml")
    again = StudySpec.from_dict(yaml.safe_load(yaml.safe_dump(spec.to_dict())), source="stored")
    assert again.base == spec.base and again.space.raw == spec.space.raw and again.objective == spec.objective


@pytest.mark.parametrize("train, val, verdict", [
    (0.03, 0.21, "overfitting"), (0.40, 0.42, "underfitting"), (0.05, 0.06, "on target"), (None, 0.2, "unknown")])
def test_diagnosis_in_the_notebooks_terms(train, val, verdict):
    found, advice = diagnose(train, val, Diagnosis(target=0.1, overfit_ratio=0.75))
    assert found == verdict
    if verdict == "overfitting":
        assert "regularise" in advice
    if verdict == "underfitting":
        assert "capacity" in advice


# Liveness ---------------------------------------------------------------------------------------

def running_trial(storage, worker, heartbeat=None):
    study = optuna.create_study(study_name="live", storage=storage, load_if_exists=True)
    trial = study.ask()
    trial.suggest_categorical("model.sequence.filter_width", [7, 11])
    trial.set_user_attr(liveness.WORKER_ATTR, worker)
    if heartbeat is not None:
        trial.set_user_attr(liveness.HEARTBEAT_ATTR, heartbeat)
    return study, trial


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def reap(study, storage, journal=True):
    return liveness.reap(study, storage, journal=journal, stale_after=60, max_retries=2)


def test_a_dead_workers_trial_is_failed_once_and_retried_with_its_params(tmp_path):
    url = f"journal:{tmp_path}/optuna.journal"
    storage = open_storage(url).storage
    worker = {"host": socket.gethostname(), "pid": dead_pid(), "start": "1", "worker": "x"}
    study, trial = running_trial(storage, worker)
    params = dict(study.trials[0].params)
    # two workers (two storage objects, as two processes) reap at once: one wins
    other_storage = open_storage(url).storage
    other = optuna.load_study(study_name="live", storage=other_storage)
    won = reap(study, storage) + reap(other, other_storage)
    assert won == [trial.number]
    trials = optuna.load_study(study_name="live", storage=open_storage(url).storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    retry = trials[1]
    assert retry.params == params and retry.user_attrs[liveness.RETRY_OF_ATTR] == trial.number
    assert "is gone" in trials[0].user_attrs[liveness.DEATH_ATTR]
    assert liveness.retried_numbers(trials) == {trial.number}


def test_a_live_worker_on_this_host_is_never_reaped_however_old_its_heartbeat(tmp_path):
    parent = os.getppid()
    storage = open_storage(f"journal:{tmp_path}/j.journal").storage
    study, _ = running_trial(storage, {"host": socket.gethostname(), "pid": parent, "start": process_start(parent),
                                       "worker": "x"}, heartbeat=time.time() - 10_000)
    assert reap(study, storage) == []


def test_a_reused_pid_is_recognised_by_its_start_time(tmp_path):
    parent = os.getppid()
    storage = open_storage(f"journal:{tmp_path}/j.journal").storage
    worker = {"host": socket.gethostname(), "pid": parent, "start": "12345", "worker": "x"}
    study, trial = running_trial(storage, worker)
    assert reap(study, storage) == [trial.number]


def test_a_remote_worker_is_dead_when_its_heartbeat_is_stale(tmp_path):
    storage = open_storage(f"journal:{tmp_path}/j.journal").storage
    study, _ = running_trial(storage, {"host": "elsewhere", "pid": 1, "start": None, "worker": "y"},
                             heartbeat=time.time())
    assert reap(study, storage) == []
    assert reap(study, storage, journal=False) == []  # on an RDB storage Optuna's own heartbeat decides
    study, trial = running_trial(storage, {"host": "elsewhere", "pid": 2, "start": None, "worker": "z"},
                                 heartbeat=time.time() - 120)
    assert reap(study, storage) == [trial.number]


def test_retries_stop_after_max_retries(tmp_path):
    storage = open_storage(f"journal:{tmp_path}/j.journal").storage
    worker = {"host": socket.gethostname(), "pid": dead_pid(), "start": None, "worker": "x"}
    study, trial = running_trial(storage, worker)
    trial.set_user_attr(liveness.ATTEMPT_ATTR, 3)
    assert reap(study, storage) == [trial.number]
    assert [t.state.name for t in study.trials] == ["FAIL"]  # third attempt died: not queued again


def test_cli_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
    from deepreg.cli import main

    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("deepreg sweep: error:") and "no such config file" in err and "\n" not in err
    assert main(["study", "show", "nothing", "--storage", f"journal:{tmp_path}/none.journal"]) == 2
    assert "no journal file" in capsys.readouterr().err
