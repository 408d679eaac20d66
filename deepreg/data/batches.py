"""Blocks of genes x conditions that feed Keras `fit`, gathered from the factored arrays.

A batch is a block: the promoters of `block_genes` genes, the regulator inputs of
`block_conditions` conditions, and the G_b x C_b label matrix with NaN wherever a pair is not in the
requested split or not observed. Each pair of the split lies in exactly one block per epoch; blocks
are reshuffled every epoch from a fixed seed. With `max_batches`, an epoch is the first blocks of
that epoch's shuffle (quick runs); the others come up in later epochs.

`PairBatches` is the naive form's input: one row per pair (a promoter and a regulator vector per
pair), gathered batch by batch from the same factored arrays, never stored as a table.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from deepreg.data.encoding import as_model_input


class BlockBatches(keras.utils.PyDataset):
    """Keras dataset of (inputs, labels) blocks over the pairs where `split == which`."""

    def __init__(self, sequences: np.ndarray, regulator_inputs: np.ndarray, labels: np.ndarray,
                 split: np.ndarray, which: int, *, block_genes: int, block_conditions: int,
                 shuffle: bool = True, seed: int = 0, background=None, genes: np.ndarray | None = None,
                 max_batches: int | None = None, indices: bool = False):
        super().__init__()
        self.indices = indices
        in_split = (split == which) & ~np.isnan(labels)
        if genes is not None:
            restricted = np.zeros_like(in_split)
            restricted[genes] = in_split[genes]
            in_split = restricted
        self.sequences = sequences
        self.regulator_inputs = regulator_inputs.astype(np.float32)
        self.labels = np.where(in_split, labels, np.nan).astype(np.float32)
        self.rows = np.flatnonzero(in_split.any(axis=1))
        self.columns = np.flatnonzero(in_split.any(axis=0))
        self.n_pairs = int(in_split.sum())
        self.block_genes = max(1, min(block_genes, len(self.rows)))
        self.block_conditions = max(1, min(block_conditions, len(self.columns)))
        self.shuffle, self.seed, self.background, self.max_batches = shuffle, seed, background, max_batches
        self.epoch = 0
        self._arrange()

    def _arrange(self) -> None:
        rng = np.random.default_rng([self.seed, self.epoch])
        rows = rng.permutation(self.rows) if self.shuffle else self.rows
        columns = rng.permutation(self.columns) if self.shuffle else self.columns
        self.row_blocks = np.array_split(rows, max(1, math.ceil(len(rows) / self.block_genes)))
        self.column_blocks = np.array_split(columns, max(1, math.ceil(len(columns) / self.block_conditions)))
        count = len(self.row_blocks) * len(self.column_blocks)
        self.order = rng.permutation(count) if self.shuffle else np.arange(count)

    def __len__(self) -> int:
        if not self.n_pairs:
            return 0
        return len(self.order) if self.max_batches is None else min(len(self.order), self.max_batches)

    def block(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Gene rows and condition columns of batch `index` in this epoch's arrangement."""
        gene_block, condition_block = divmod(int(self.order[index]), len(self.column_blocks))
        return self.row_blocks[gene_block], self.column_blocks[condition_block]

    def __getitem__(self, index: int):
        rows, columns = self.block(index)
        inputs = {
            "sequence": as_model_input(self.sequences[rows], self.background),
            "regulators": self.regulator_inputs[columns],
        }
        if self.indices:
            inputs.update(gene=rows.astype(np.int32), condition=columns.astype(np.int32))
        return inputs, self.labels[np.ix_(rows, columns)]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._arrange()


class PairBatches(keras.utils.PyDataset):
    """Keras dataset of (inputs, labels) batches with one row per pair where `split == which`.

    Feeds the pair model (`implementation: naive`): each batch gathers `batch_pairs` promoters and
    regulator vectors, one per pair, from the factored arrays. Pairs are reshuffled every epoch.
    """

    def __init__(self, sequences: np.ndarray, regulator_inputs: np.ndarray, labels: np.ndarray,
                 split: np.ndarray, which: int, *, batch_pairs: int, shuffle: bool = True, seed: int = 0,
                 background=None, max_batches: int | None = None, indices: bool = False):
        super().__init__()
        self.indices = indices
        in_split = (split == which) & ~np.isnan(labels)
        self.sequences = sequences
        self.regulator_inputs = regulator_inputs.astype(np.float32)
        self.genes, self.conditions = (axis.astype(np.int32) for axis in np.nonzero(in_split))
        self.targets = labels[in_split].astype(np.float32)
        self.n_pairs = len(self.targets)
        self.batch_pairs = max(1, int(batch_pairs))
        self.shuffle, self.seed, self.background, self.max_batches = shuffle, seed, background, max_batches
        self.epoch = 0
        self._arrange()

    def _arrange(self) -> None:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.order = rng.permutation(self.n_pairs) if self.shuffle else np.arange(self.n_pairs)

    def __len__(self) -> int:
        count = math.ceil(self.n_pairs / self.batch_pairs)
        return count if self.max_batches is None else min(count, self.max_batches)

    def pairs(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Gene and condition indices of the pairs in batch `index` of this epoch."""
        chosen = self.order[index * self.batch_pairs:(index + 1) * self.batch_pairs]
        return self.genes[chosen], self.conditions[chosen]

    def __getitem__(self, index: int):
        chosen = self.order[index * self.batch_pairs:(index + 1) * self.batch_pairs]
        inputs = {
            "sequence": as_model_input(self.sequences[self.genes[chosen]], self.background),
            "regulators": self.regulator_inputs[self.conditions[chosen]],
        }
        if self.indices:
            inputs.update(gene=self.genes[chosen], condition=self.conditions[chosen])
        return inputs, self.targets[chosen]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._arrange()
