"""The default scoring function: predictions of a block model for genes x conditions.

Every perturbation in `knockouts.py` takes `func=` with one contract (tangermeme's):
`func(model, sequences, regulators, **kwargs) -> G x C` (a score per gene and condition), so the
effect of a knock-out on predictions and on attributions is the same call with another `func`.
"""

from __future__ import annotations

import numpy as np

from deepreg.attribution._network import CLASS_NAMES


def predict(model, sequences: np.ndarray, regulators: np.ndarray, *, background=None, block_genes: int = 128,
            block_conditions: int = 256) -> np.ndarray:
    """G x C predictions: the regression output, or P(up) - P(down) for a 3-class model."""
    from deepreg.training.evaluate import predict_matrix

    sequences = np.asarray(sequences)
    if sequences.dtype != np.uint8 and background is None:
        # float promoters (e.g. knock-outs with N rows) go in as they are
        out = _predict_float(model, sequences, regulators, block_genes, block_conditions)
    else:
        out = predict_matrix(model, sequences, np.asarray(regulators, np.float32), background=background,
                             block_genes=block_genes, block_conditions=block_conditions)
    if out.ndim == 3:
        out = out[..., CLASS_NAMES.index("up")] - out[..., CLASS_NAMES.index("down")]
    return out


def _predict_float(model, sequences, regulators, block_genes, block_conditions):
    out = None
    regulators = np.asarray(regulators, np.float32)
    for start in range(0, len(sequences), block_genes):
        promoter = sequences[start:start + block_genes].astype(np.float32)
        for column in range(0, len(regulators), block_conditions):
            block = np.asarray(model.predict_on_batch({"sequence": promoter,
                                                       "regulators": regulators[column:column + block_conditions]}))
            if out is None:
                out = np.zeros((len(sequences), len(regulators)) + block.shape[2:], np.float32)
            out[start:start + len(promoter), column:column + block_conditions] = block
    return out
