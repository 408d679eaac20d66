"""The model half of a run's configuration: one frozen config picks a point of the architecture space."""

from __future__ import annotations

import dataclasses
from typing import Literal

from deepreg._config import Config
from deepreg.errors import DeepRegError


@dataclasses.dataclass(frozen=True)
class SequenceConfig(Config):
    """The promoter (cis) tower. Per-layer values may be one value for every layer."""

    tower: str = "conv"
    conv_layers: int = 1
    filters: tuple[int, ...] = (256,)
    filter_width: tuple[int, ...] = (19,)
    padding: Literal["valid", "same"] = "valid"
    activation: str = "relu"
    pool: tuple[str, ...] = ("global",)

    def per_layer(self, name: str) -> tuple:
        """The value of a per-layer field for each conv layer (a single value is broadcast)."""
        values = getattr(self, name)
        if len(values) == 1:
            return tuple(values) * self.conv_layers
        return tuple(values)

    def __post_init__(self) -> None:
        if self.conv_layers < 0:
            raise DeepRegError(f"model.sequence.conv_layers: expected 0 or more layers, got {self.conv_layers}")
        for name in ("filters", "filter_width", "pool"):
            values = getattr(self, name)
            if self.conv_layers and len(values) not in (1, self.conv_layers):
                raise DeepRegError(f"model.sequence.{name}: {len(values)} values clash with "
                                   f"model.sequence.conv_layers = {self.conv_layers} (give 1 or {self.conv_layers})")
        for pool in self.pool:
            if pool not in ("none", "global") and not (pool.isdigit() and int(pool) > 0):
                raise DeepRegError(f"model.sequence.pool: {pool!r} is not 'none', 'global' or a positive pool factor")


@dataclasses.dataclass(frozen=True)
class RegulatorConfig(Config):
    """The regulator (trans) tower: the raw regulator vector (no layers) or dense layers."""

    dense_units: tuple[int, ...] = ()
    activation: str = "relu"


@dataclasses.dataclass(frozen=True)
class HeadConfig(Config):
    """Dense layers after fusion. The first one reads the fused sequence and regulator features."""

    dense_units: tuple[int, ...] = (512, 512)
    activation: str = "relu"
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if not self.dense_units:
            raise DeepRegError("model.head.dense_units: at least one dense layer is needed to fuse the two towers")
        if not 0.0 <= self.dropout < 1.0:
            raise DeepRegError(f"model.head.dropout: expected a rate in [0, 1), got {self.dropout}")


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    """One point of the architecture space.

    `fusion` names a registered fusion (`tensor`: the outer product of sequence and regulator
    features into the first head layer; `concat`: their concatenation). `implementation` picks the
    factorised block computation (default) or the naive per-pair reference that materialises the
    fused vector; both have the same parameters and outputs.
    """

    name: str = "single-layer-tensor"
    task: Literal["regression", "classification"] = "regression"
    sequence: SequenceConfig = SequenceConfig()
    regulators: RegulatorConfig = RegulatorConfig()
    fusion: str = "tensor"
    head: HeadConfig = HeadConfig()
    l1: float = 0.0
    l2: float = 0.0
    implementation: Literal["factorised", "naive"] = "factorised"

    def __post_init__(self) -> None:
        if self.l1 < 0 or self.l2 < 0:
            raise DeepRegError(f"model.l1 / model.l2: expected strengths >= 0, got {self.l1} and {self.l2}")

    @property
    def n_outputs(self) -> int:
        return 1 if self.task == "regression" else 3
