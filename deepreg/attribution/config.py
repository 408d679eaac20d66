"""What `deepreg attribute` computes: the attribution stage's config (`attribution.*` params).

A `Config` like the run's: built from the command's options, `--set attribution.KEY=VALUE` overrides,
or a YAML file of these keys (`deepreg attribute --config FILE`; a file may start `from:` another).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from deepreg._config import Config
from deepreg.errors import DeepRegError


@dataclasses.dataclass(frozen=True)
class AttributionConfig(Config):
    """What `deepreg attribute` computes (every field is logged as an `attribution.*` param)."""

    reference: Literal["zero", "mean"] = "zero"
    max_genes: int | None = None
    gradient_x_input: bool = True
    targets: str | None = None
    targets_of: str | None = None
    sequence_genes: int = 200
    shuffles: int = 10
    plot_genes: tuple[str, ...] = ()
    known_motifs: str = "JASPAR2026:fungi"
    q_threshold: float = 0.05
    top_subsequences: int = 100
    modisco: bool = True
    modisco_genes: int = 300
    modisco_leiden_runs: int = 2
    knockout_filters: int = 8
    knockout_top_genes: int = 50
    tf_knockouts: tuple[str, ...] = ()
    auto_knockouts: int = 20
    knockout_conditions: int = 16
    fold: float = 32.0
    condition_groups: str | None = None
    measured: str | None = None
    truth: str | None = "auto"
    known_targets: tuple[str, ...] = ()
    known_target_q: float = 0.1
    measured_deletions: bool = True
    deletion_top_genes: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sequence_genes < 0 or self.modisco_genes < 0 or self.shuffles < 1:
            raise DeepRegError("attribution: sequence_genes and modisco_genes must be >= 0 and shuffles >= 1")
        if not 0 < self.q_threshold < 1:
            raise DeepRegError(f"attribution.q_threshold: expected a value in (0, 1), got {self.q_threshold}")
        if self.fold <= 0:
            raise DeepRegError(f"attribution.fold: expected a positive factor, got {self.fold}")
        if not 0 < self.known_target_q < 1:
            raise DeepRegError(f"attribution.known_target_q: expected a value in (0, 1), got {self.known_target_q}")
        if self.auto_knockouts < 0 or self.knockout_conditions < 0:
            raise DeepRegError(f"attribution.auto_knockouts ({self.auto_knockouts}) and "
                               f"attribution.knockout_conditions ({self.knockout_conditions}): expected counts >= 0 "
                               "(0: no automatic knock-outs; all conditions)")
        if self.deletion_top_genes < 3:
            raise DeepRegError(f"attribution.deletion_top_genes: expected at least 3 genes, got {self.deletion_top_genes}")
