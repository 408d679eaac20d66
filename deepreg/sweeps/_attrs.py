"""The names of the Optuna user attributes a `deepreg sweep` study and its trials carry.

The study's own: the spec (so workers and `study show` rebuild it), the MLflow parent run, tracking
URI and experiment, and the refine lineage. Each trial's: its state and reason in deepreg's words
(`finished`, `pruned`, `failed`, `interrupted`, `skipped`) and its MLflow run. The MLflow tags of
the same meaning are named in `deepreg.tracking.tags`; the liveness attributes in `_liveness`, the
baselines' table in `_baselines`.
"""

SPEC_ATTR = "deepreg.spec"
PARENT_ATTR = "deepreg.parent_run_id"
TRACKING_ATTR = "deepreg.tracking_uri"
EXPERIMENT_ATTR = "deepreg.experiment"
LINEAGE_ATTR = "deepreg.lineage"
STATE_ATTR = "deepreg.state"
REASON_ATTR = "deepreg.reason"
RUN_ATTR = "deepreg.run_id"
