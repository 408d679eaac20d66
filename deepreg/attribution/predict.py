"""The default scoring function: predictions of a block model for genes x conditions.

Every perturbation in `knockouts.py` takes `func=` with one contract (tangermeme's):
`func(model, sequences, regulators, **kwargs) -> G x C` (a score per gene and condition), so the
effect of a knock-out on predictions and on attributions is the same call with another `func`.
"""

from __future__ import annotations

import numpy as np

from deepreg.attribution._network import CLASS_NAMES
from deepreg.errors import DeepRegError


def predict(model, sequences: np.ndarray, regulators: np.ndarray, *, background=None, gene_index=None,
            condition_index=None, block_genes: int = 128, block_conditions: int = 256) -> np.ndarray:
    """G x C predictions: the regression output, or P(up) - P(down) for a 3-class model.

    Promoters are one-hot (uint8; all-zero rows become `background` when it is given) or float model
    inputs (e.g. knock-outs with N rows), taken as they are. `gene_index` / `condition_index`: the
    dataset rows of `sequences` and of `regulators` (default 0..G-1 and 0..C-1), fed to models that
    read gene and condition indices (`model.gene_embedding`, `model.offset`).
    """
    from deepreg.data.encoding import as_model_input

    sequences = np.asarray(sequences)
    regulators = np.asarray(regulators, np.float32)
    indices = _index_inputs(model, len(sequences), len(regulators), gene_index, condition_index)
    out = None
    for start in range(0, len(sequences), block_genes):
        promoter = as_model_input(sequences[start:start + block_genes], background)
        genes = slice(start, start + len(promoter))
        for column in range(0, len(regulators), block_conditions):
            conditions = slice(column, column + block_conditions)
            inputs = {"sequence": promoter, "regulators": regulators[conditions]}
            if indices is not None:
                inputs.update(gene=indices[0][genes], condition=indices[1][conditions])
            block = np.asarray(model.predict_on_batch(inputs))
            if out is None:
                out = np.zeros((len(sequences), len(regulators)) + block.shape[2:], np.float32)
            out[genes, conditions] = block
    if out is not None and out.ndim == 3:
        out = out[..., CLASS_NAMES.index("up")] - out[..., CLASS_NAMES.index("down")]
    return out


def _index_inputs(model, n_genes: int, n_conditions: int, gene_index, condition_index):
    """(gene rows, condition columns) as int32 for a model with `gene` / `condition` inputs, else None."""
    from deepreg.models.bilinear import CONDITION_INPUT, GENE_INPUT
    from deepreg.models.build import model_input_names

    names = model_input_names(model)
    if GENE_INPUT not in names and CONDITION_INPUT not in names:
        return None
    indices = []
    for name, count, given in (("gene_index", n_genes, gene_index), ("condition_index", n_conditions, condition_index)):
        values = np.arange(count) if given is None else np.asarray(given).reshape(-1)
        if len(values) != count:
            raise DeepRegError(f"predict: {name} has {len(values)} entries for {count} "
                               f"{'promoters' if name == 'gene_index' else 'regulator vectors'}")
        indices.append(values.astype(np.int32))
    return tuple(indices)
