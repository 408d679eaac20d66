"""Stage 5, sweeps: studies over the architecture space, every trial a child MLflow run.

The public surface is small; engines (Optuna, keras-tuner), storages, liveness and reporting live
in private modules:

- `load_spec(path)` / `StudySpec`: a validated study spec (`sweeps/*.yaml`);
- `run_sweep(spec, ...)`: create or resume a study and run trials here (Optuna engine);
- `run_worker(name, storage=...)`: join a running study from another process or machine;
- `run_keras_tuner(spec, ...)`: the same spec searched by keras-tuner;
- `run_refine(spec, ...)`: baseline-then-refine, stage by stage;
- `describe_study(study)` / `load_study(name, storage)`: what `deepreg study show` prints;
- `default_storage_url(tracking_uri)`: the journal file next to the MLflow store.
"""

from deepreg.sweeps._keras_tuner import run_keras_tuner
from deepreg.sweeps._optuna import StudyOutcome, run_sweep, run_worker
from deepreg.sweeps._refine import diagnose, run_refine
from deepreg.sweeps._report import describe_study, epoch_accounting
from deepreg.sweeps._spec import StudySpec, load_spec
from deepreg.sweeps._storage import default_storage_url, load_study

__all__ = ["StudySpec", "load_spec", "run_sweep", "run_worker", "run_keras_tuner", "run_refine", "diagnose",
           "describe_study", "epoch_accounting", "StudyOutcome", "default_storage_url", "load_study"]
