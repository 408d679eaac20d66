"""Stage 3, training: fit a model on a dataset's training pairs, with the notebook's schedule."""

__all__ = ["TrainingConfig"]


def __getattr__(name: str):
    """`TrainingConfig` on first use: importing the configs imports Keras, which the scorers in
    `deepreg.training.metrics` (also used by the network-free baselines) do not need."""
    if name == "TrainingConfig":
        from deepreg.training.config import TrainingConfig

        return TrainingConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
