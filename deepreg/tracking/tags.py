"""The MLflow tag names that runs and studies share, and a study's objective written as tags.

Sweeps write these tags (`deepreg.sweeps`), training runs set their state, and the registry reads
them to pick a study's best trial (`deepreg.tracking.registry`); all import the names from here.

A study's parent run carries its objective as two tags: `deepreg.objective.metric`, the MLflow
metric its trial runs are ranked by (`validation_loss`, `validation_pearson_r`), and
`deepreg.objective.direction` (minimize or maximize). The `study.objective` param beside them
("maximize validation pearson r") is for people; it is read only for parent runs written before
the two tags existed (`legacy_objective`).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from deepreg.errors import DeepRegError

STUDY_TAG = "deepreg.study"
ENGINE_TAG = "deepreg.engine"
ROLE_TAG = "deepreg.role"
TRIAL_TAG = "deepreg.trial_number"
STATE_TAG = "deepreg.state"
REASON_TAG = "deepreg.reason"
STORAGE_TAG = "deepreg.storage"
OBJECTIVE_METRIC_TAG = "deepreg.objective.metric"
OBJECTIVE_DIRECTION_TAG = "deepreg.objective.direction"
OBJECTIVE_PARAM = "study.objective"
DIRECTIONS = ("minimize", "maximize")


@dataclasses.dataclass(frozen=True)
class StudyObjective:
    """What a study's trial runs are ranked by: an MLflow metric key and a direction."""

    metric: str
    direction: str

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise DeepRegError(f"objective direction {self.direction!r}: expected minimize or maximize")
        if not self.metric:
            raise DeepRegError("objective metric: expected an MLflow metric key such as validation_loss")

    def tags(self) -> dict[str, str]:
        return {OBJECTIVE_METRIC_TAG: self.metric, OBJECTIVE_DIRECTION_TAG: self.direction}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> "StudyObjective | None":
        """The objective a parent run's tags record, or None when it has none (older stores)."""
        metric, direction = tags.get(OBJECTIVE_METRIC_TAG), tags.get(OBJECTIVE_DIRECTION_TAG)
        if not metric or direction not in DIRECTIONS:
            return None
        return cls(metric=metric, direction=direction)


DEFAULT_OBJECTIVE = StudyObjective("validation_loss", "minimize")


def legacy_objective(params: Mapping[str, str]) -> StudyObjective | None:
    """The objective of a parent run written before the objective tags, from its `study.objective` param.

    That param was "DIRECTION validation METRIC WORDS" (spaces for underscores); stores written since
    carry the tags, so this reads only old ones.
    """
    direction, _, label = params.get(OBJECTIVE_PARAM, "").strip().partition(" ")
    if direction not in DIRECTIONS or not label.strip():
        return None
    return StudyObjective(metric="_".join(label.split()), direction=direction)
