"""Stage 3, training: fit a model on a dataset's training pairs, with the notebook's schedule."""

from deepreg.training.config import TrainingConfig

__all__ = ["TrainingConfig"]
