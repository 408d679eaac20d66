"""What data to read and how to turn it into a dataset: the data half of a run's configuration."""

from __future__ import annotations

import dataclasses
from typing import Literal

from deepreg._config import Config
from deepreg.errors import DeepRegError

SplitKind = Literal["random", "genes", "conditions", "genes_and_conditions"]
# The classes of a classification task, in label order (`Dataset.labels`: values <= the lower
# `class_thresholds` are 0, >= the upper are 2, the rest 1).
CLASS_NAMES = ("down", "baseline", "up")


@dataclasses.dataclass(frozen=True)
class DataConfig(Config):
    """Inputs and the policies that turn them into a factored dataset.

    `bundle` names a dataset shipped with the package (`simulated`, `yeast`); explicit file paths
    override the bundle's files. Relative paths are taken from the working directory.

    Policies (documented in docs/data.md):
    - `n_encoding`: N and other IUPAC ambiguity letters, and padding, become an all-zero one-hot row
      in storage; at batch time they stay zero (`zeros`) or become the `background` base frequencies.
    - promoters longer than `sequence_length` are trimmed and shorter ones padded with N, both at the
      distal (5') end, so position -1 is always the base next to the ORF start.
    - `missing`: missing expression cells are left out of the loss (`mask`) or filled with 0 as in
      the original work (`zero`).
    - genes without a promoter, or with a promoter but no expression row, are dropped (counted in the
      dataset summary); a listed regulator missing from the expression matrix is an error, or, with
      `missing_regulators: drop`, is left out with a warning naming it.
    - `targets` (a gene list; a bundle may ship one) restricts the predicted genes; regulators stay
      inputs whether or not they are targets. `max_genes` keeps a fixed random subset (seed 0) of
      them, for quick runs.
    - `exclude_conditions` (condition names, or regular expressions searched in the names) puts those
      conditions in no split: they stay in the dataset (attribution compares predictions with them)
      but are never trained, validated or tested on. The yeast deletion and overexpression arrays are
      held out this way for the knock-out checks (docs/attribution.md).
    """

    bundle: str | None = "simulated"
    expression: str | None = None
    promoters: str | None = None
    regulators: str | None = None
    genes: str | None = None
    targets: str | None = None
    sequence_length: int = 1000
    n_encoding: Literal["zeros", "background"] = "zeros"
    background: tuple[float, float, float, float] = (0.31, 0.19, 0.19, 0.31)
    missing: Literal["mask", "zero"] = "mask"
    class_thresholds: tuple[float, float] = (-0.5, 0.5)
    split: SplitKind = "random"
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    max_genes: int | None = None
    missing_regulators: Literal["error", "drop"] = "error"
    exclude_conditions: tuple[str, ...] = ()
    cache_dir: str = ".deepreg-cache"

    def __post_init__(self) -> None:
        if self.sequence_length < 1:
            raise DeepRegError(f"data.sequence_length: expected a positive length, got {self.sequence_length}")
        fractions = self.split_fractions
        if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6 or fractions[0] == 0:
            raise DeepRegError(f"data.split_fractions: expected train/validation/test fractions >= 0 summing to 1, got {list(fractions)}")
        low, high = self.class_thresholds
        if not low < high:
            raise DeepRegError(f"data.class_thresholds: expected down < up, got {list(self.class_thresholds)}")
        if abs(sum(self.background) - 1.0) > 1e-3:
            raise DeepRegError(f"data.background: expected A,C,G,T frequencies summing to 1, got {list(self.background)}")
        if self.bundle is None and not (self.expression and self.promoters and self.regulators):
            raise DeepRegError("data: give 'bundle' or all of 'expression', 'promoters' and 'regulators'")
        if self.max_genes is not None and self.max_genes < 2:
            raise DeepRegError(f"data.max_genes: expected at least 2 genes, got {self.max_genes}")
        for index, pattern in enumerate(self.exclude_conditions):
            if not str(pattern).strip():
                raise DeepRegError(f"data.exclude_conditions[{index}]: expected a condition name or a regular "
                                   "expression, got an empty string")

    def dataset_key(self) -> dict:
        """The fields that change the prepared arrays (splits and label policies do not); a policy
        joins the key only when it is not its default, so the fingerprints of earlier runs stay valid."""
        key = {"sequence_length": self.sequence_length, "max_genes": self.max_genes}
        if self.missing_regulators != "error":
            key["missing_regulators"] = self.missing_regulators
        return key
