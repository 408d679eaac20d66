"""Predict blocks of the genes x conditions matrix and score them on a split."""

from __future__ import annotations

import numpy as np

from deepreg.data.encoding import as_model_input
from deepreg.models.build import model_input_names
from deepreg.training.metrics import classification_scores, regression_scores

PREDICT_BLOCK_GENES = 64
PREDICT_BLOCK_CONDITIONS = 256


def predict_matrix(model, sequences: np.ndarray, regulator_inputs: np.ndarray, rows=None, columns=None, *,
                   background=None, block_genes: int = PREDICT_BLOCK_GENES,
                   block_conditions: int = PREDICT_BLOCK_CONDITIONS) -> np.ndarray:
    """Predictions for every (row gene, column condition) pair: len(rows) x len(columns) [x classes].

    Models that read gene or condition indices get `rows` and `columns` as those indices."""
    rows = np.arange(len(sequences)) if rows is None else np.asarray(rows)
    columns = np.arange(len(regulator_inputs)) if columns is None else np.asarray(columns)
    indexed = any(name in ("gene", "condition") for name in model_input_names(model))
    out = None
    for start in range(0, len(rows), block_genes):
        gene_block = rows[start:start + block_genes]
        promoter = as_model_input(sequences[gene_block], background)
        for column_start in range(0, len(columns), block_conditions):
            condition_block = columns[column_start:column_start + block_conditions]
            inputs = {"sequence": promoter, "regulators": regulator_inputs[condition_block]}
            if indexed:
                inputs.update(gene=gene_block.astype(np.int32), condition=condition_block.astype(np.int32))
            block = np.asarray(model.predict_on_batch(inputs))
            if out is None:
                out = np.zeros((len(rows), len(columns)) + block.shape[2:], dtype=np.float32)
            out[start:start + len(gene_block), column_start:column_start + len(condition_block)] = block
    return out


def score_pairs(predictions: np.ndarray, labels: np.ndarray, scored: np.ndarray, task: str) -> dict:
    """Scores over the pairs where `scored` is true and the label is known (matrices aligned)."""
    use = scored & ~np.isnan(labels)
    observed = labels[use]
    if task == "regression":
        scores = regression_scores(predictions[use], observed)
        scores["loss"] = scores["mse"]
    else:
        scores = classification_scores(predictions[use], observed)
        scores["loss"] = scores["cross_entropy"]
    scores["pairs"] = int(use.sum())
    return scores
