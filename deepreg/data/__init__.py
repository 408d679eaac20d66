"""Stage 1, data: files -> factored dataset -> splits -> batches."""

from deepreg.data.config import DataConfig
from deepreg.data.dataset import Dataset, build_dataset, load_dataset
from deepreg.data.splits import TEST, TRAIN, UNUSED, VALIDATION, make_split

__all__ = ["DataConfig", "Dataset", "build_dataset", "load_dataset", "make_split",
           "TRAIN", "VALIDATION", "TEST", "UNUSED"]
