"""Named building blocks: sequence towers and fusions are registered once and picked by config."""

from __future__ import annotations

from typing import Callable

from deepreg.errors import DeepRegError

SEQUENCE_TOWERS: dict[str, Callable] = {}
FUSIONS: dict[str, Callable] = {}


def _register(table: dict[str, Callable], kind: str, name: str):
    def decorator(builder: Callable) -> Callable:
        if name in table:
            raise ValueError(f"{kind} {name!r} is already registered")
        table[name] = builder
        return builder
    return decorator


def register_sequence_tower(name: str):
    """Register `builder(config: ModelConfig, sequence_length, regularizer) -> keras.Model`.

    The tower maps promoters (batch x L x 4) to features (batch x F), or to per-position features
    (batch x P x F) when the config's fusion reads positions (`ModelConfig.reads_positions`).
    """
    return _register(SEQUENCE_TOWERS, "sequence tower", name)


def register_fusion(name: str):
    """Register `builder(config: ModelConfig, regularizer) -> fusion layer`.

    The layer is called as `layer([sequence_features, regulator_features], pairwise=...)`: pairwise on
    one row per pair (the naive reference), otherwise on a block of genes x conditions.
    """
    return _register(FUSIONS, "fusion", name)


def lookup(table: dict[str, Callable], kind: str, key: str, name: str) -> Callable:
    if name not in table:
        raise DeepRegError(f"{key}: unknown {kind} {name!r} (registered: {', '.join(sorted(table))})")
    return table[name]
