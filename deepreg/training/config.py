"""The training half of a run's configuration: optimiser, schedule, blocks, seeds."""

from __future__ import annotations

import dataclasses
from typing import Literal

from deepreg._config import Config
from deepreg.errors import DeepRegError


@dataclasses.dataclass(frozen=True)
class TrainingConfig(Config):
    """How to fit: the notebook's schedule by default (halve the rate after `lr_patience` epochs
    without improvement, stop after `early_stopping_patience`, keep the best weights).

    A batch is a block of `block_genes` genes x `block_conditions` conditions; only the pairs of
    the training split inside it count in the loss. `max_steps_per_epoch` caps the blocks per epoch
    (the rest are seen in later epochs' shuffles) for quick runs.
    """

    optimizer: Literal["sgd", "adam"] = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.5
    epochs: int = 30
    block_genes: int = 32
    block_conditions: int = 64
    lr_patience: int = 5
    lr_factor: float = 0.5
    early_stopping_patience: int = 10
    monitor: Literal["val_loss"] = "val_loss"
    seed: int = 0
    max_steps_per_epoch: int | None = None
    train_metrics_genes: int = 256

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise DeepRegError(f"training.epochs: expected at least 1 epoch, got {self.epochs}")
        if self.learning_rate <= 0:
            raise DeepRegError(f"training.learning_rate: expected a positive rate, got {self.learning_rate}")
        if self.block_genes < 1 or self.block_conditions < 1:
            raise DeepRegError("training.block_genes / training.block_conditions: expected positive block sizes")
        if not 0 < self.lr_factor < 1:
            raise DeepRegError(f"training.lr_factor: expected a factor in (0, 1), got {self.lr_factor}")
