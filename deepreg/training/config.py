"""The training half of a run's configuration (optimiser, schedule, blocks, seeds), and the run config
that joins data, model and training in one YAML file with three sections."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal, Mapping

from deepreg._config import Config, load_yaml
from deepreg.data.config import DataConfig
from deepreg.errors import DeepRegError
from deepreg.models.config import ModelConfig

UNSEEN_GENE_SPLITS = ("genes", "genes_and_conditions")
UNSEEN_CONDITION_SPLITS = ("conditions", "genes_and_conditions")


@dataclasses.dataclass(frozen=True)
class TrainingConfig(Config):
    """How to fit: the notebook's schedule by default (halve the rate after `lr_patience` epochs
    without improvement, stop after `early_stopping_patience`, keep the best weights).

    A batch is a block of `block_genes` genes x `block_conditions` conditions; only the pairs of
    the training split inside it count in the loss. `max_steps_per_epoch` caps the blocks per epoch
    (the rest are seen in later epochs' shuffles) for quick runs.

    `adamw` is Adam with decoupled `weight_decay`; `clipnorm` clips each gradient's norm.
    `schedule: cosine` warms the rate up linearly over `warmup_epochs`, then decays it along a
    cosine to zero at the last epoch (instead of halving it on a plateau).

    `ensemble: N` trains N members of the model, each its own run of this recipe from its own seed
    (`seed * N + i` for member i, so that seeds 0, 1, 2 of a 3-member ensemble share no member), and
    keeps one model whose prediction is their mean. Each member stops early on validation alone.
    """

    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.5
    weight_decay: float = 0.0
    clipnorm: float | None = None
    schedule: Literal["plateau", "cosine"] = "plateau"
    warmup_epochs: int = 0
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
    ensemble: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise DeepRegError(f"training.epochs: expected at least 1 epoch, got {self.epochs}")
        if self.learning_rate <= 0:
            raise DeepRegError(f"training.learning_rate: expected a positive rate, got {self.learning_rate}")
        if self.block_genes < 1 or self.block_conditions < 1:
            raise DeepRegError("training.block_genes / training.block_conditions: expected positive block sizes")
        if self.weight_decay < 0:
            raise DeepRegError(f"training.weight_decay: expected a decay >= 0, got {self.weight_decay}")
        if self.weight_decay and self.optimizer != "adamw":
            raise DeepRegError(f"training.weight_decay = {self.weight_decay} clashes with training.optimizer = "
                               f"{self.optimizer}: decoupled weight decay is AdamW's (use model.l2 otherwise)")
        if self.clipnorm is not None and self.clipnorm <= 0:
            raise DeepRegError(f"training.clipnorm: expected a positive norm (or null), got {self.clipnorm}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise DeepRegError(f"training.warmup_epochs: expected 0 to training.epochs - 1 "
                               f"({self.epochs - 1}), got {self.warmup_epochs}")
        if self.ensemble < 1:
            raise DeepRegError(f"training.ensemble: expected at least 1 member, got {self.ensemble}")
        if not 0 < self.lr_factor < 1:
            raise DeepRegError(f"training.lr_factor: expected a factor in (0, 1), got {self.lr_factor}")


@dataclasses.dataclass(frozen=True)
class RunConfig(Config):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()

    def __post_init__(self) -> None:
        if self.model.gene_embedding and self.data.split in UNSEEN_GENE_SPLITS:
            raise DeepRegError(f"model.gene_embedding = true clashes with data.split = {self.data.split}: its test "
                               "genes have no training pairs, so their embedding would never be learned")
        if self.model.condition_embedding and self.data.split in UNSEEN_CONDITION_SPLITS:
            raise DeepRegError(f"model.condition_embedding = true clashes with data.split = {self.data.split}: its "
                               "test conditions have no training pairs, so their embedding would never be learned")
        profile = self.model.profile
        if profile.enabled and self.data.split in UNSEEN_GENE_SPLITS:
            raise DeepRegError(f"model.profile.dense_units = {list(profile.dense_units)} clashes with data.split = "
                               f"{self.data.split}: its test genes have no training pairs, so they have no profile")
        if profile.enabled and profile.decoder == "conditions" and self.data.split in UNSEEN_CONDITION_SPLITS:
            raise DeepRegError(f"model.profile.decoder = conditions clashes with data.split = {self.data.split}: its "
                               "test conditions have no training pairs to learn their decoder vector from (use "
                               "model.profile.decoder: regulators)")
        check_activations(self.model)
        self.model.validate_for(self.data.sequence_length)
        self._check_validation_fraction()

    def _check_validation_fraction(self) -> None:
        """Early stopping, the plateau schedule and the weights kept all read the validation loss."""
        if self.data.split_fractions[1] == 0:
            raise DeepRegError(f"data.split_fractions = {list(self.data.split_fractions)} clashes with "
                               f"training.monitor = {self.training.monitor}: a validation fraction of 0 leaves no "
                               "validation pairs for early stopping, the learning-rate schedule and the best weights "
                               "kept (give a validation fraction > 0)")

    @classmethod
    def from_files(cls, path: str | Path | None = None, *, model: str | Path | None = None,
                   overrides: Mapping[str, Any] | None = None) -> "RunConfig":
        """Read a run YAML (sections data, model, training); `model` replaces the model section with
        a model-only YAML (as in configs/models/); dotted `overrides` are applied last.

        Either file, or any of its sections, may start from another file (`from:`, see `load_yaml`).
        """
        values = load_yaml(path) if path else {}
        if model:
            values["model"] = load_yaml(model)
        config = cls.from_dict(values, source=str(path or model or "defaults"))
        return config.with_updates(overrides, source="--set") if overrides else config


def check_activations(model: ModelConfig) -> None:
    """Refuse an activation name Keras does not know when the config is read, not when layers are built."""
    import keras

    for key, name in (("model.sequence.activation", model.sequence.activation),
                      ("model.regulators.activation", model.regulators.activation),
                      ("model.head.activation", model.head.activation),
                      ("model.profile.activation", model.profile.activation)):
        try:
            keras.activations.get(name)
        except ValueError:
            raise DeepRegError(f"{key}: unknown activation {name!r} (expected a Keras activation such as relu, "
                               "gelu, elu, tanh, sigmoid, softplus, linear)") from None

