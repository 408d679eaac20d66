"""Stage 5, sweeps: studies over the architecture space, every trial a child MLflow run.

The public surface is small; engines (Optuna, keras-tuner), storages, liveness and reporting live
in private modules, and the CLI, benchmarks and tests import from here only:

- `load_spec(path)` / `StudySpec` (and its `Diagnosis`): a validated study spec (`sweeps/*.yaml`);
- `run_sweep(spec, ...)`: create or resume a study and run trials here (Optuna engine);
- `run_worker(name, storage=...)`: join a running study from another process or machine;
- `run_keras_tuner(spec, ...)`: the same spec searched by keras-tuner;
- `run_refine(spec, ...)`: baseline-then-refine, stage by stage;
- `describe_study(study)` / `describe_refine(...)` / `load_study(name, storage)`: what `deepreg study
  show` prints;
- `default_storage_url(tracking_uri)`, `open_storage(url)`, `study_names(info)`: where studies live;
- `compute_baselines`, `format_table`, `check_names`, `BaselineTable`, `BASELINES_ATTR`: the
  network-free baselines a study fits before its first trial (`deepreg baselines` too);
- `liveness`: the trial attributes that say who runs a trial, and the reaper of dead workers' trials;
- `ui_runs_url(experiment_id)`: the MLflow UI page of a study's runs.
"""

from deepreg.sweeps import _liveness as liveness
from deepreg.sweeps._baselines import BASELINES_ATTR, BaselineTable, check_names, compute_baselines, format_table
from deepreg.sweeps._keras_tuner import run_keras_tuner
from deepreg.sweeps._optuna import StudyOutcome, run_sweep, run_worker
from deepreg.sweeps._refine import diagnose, run_refine
from deepreg.sweeps._report import describe_refine, describe_study, epoch_accounting
from deepreg.sweeps._spec import Diagnosis, StudySpec, load_spec
from deepreg.sweeps._storage import default_storage_url, load_study, open_storage, study_names
from deepreg.sweeps._tracking import ui_runs_url

__all__ = ["StudySpec", "Diagnosis", "load_spec", "run_sweep", "run_worker", "run_keras_tuner", "run_refine",
           "diagnose", "describe_study", "describe_refine", "epoch_accounting", "StudyOutcome", "default_storage_url",
           "load_study", "open_storage", "study_names", "compute_baselines", "format_table", "check_names",
           "BaselineTable", "BASELINES_ATTR", "liveness", "ui_runs_url"]
