"""Stage 4, tracking: every run, its params, learning curves, figures and model in MLflow."""

from deepreg.tracking.store import DEFAULT_TRACKING_URI, ensure_experiment, resolve_tracking_uri, use_tracking

__all__ = ["DEFAULT_TRACKING_URI", "resolve_tracking_uri", "ensure_experiment", "use_tracking"]
