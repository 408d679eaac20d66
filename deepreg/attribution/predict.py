"""The default scoring function: predictions of a block model for genes x conditions.

Every perturbation in `knockouts.py` takes `func=` with one contract (tangermeme's):
`func(model, sequences, regulators, **kwargs) -> G x C` (a score per gene and condition), so the
effect of a knock-out on predictions and on attributions is the same call with another `func`.
`FeaturePredictor` gives the same predictions from cached sequence-tower features (the stage's
TF knock-outs, which change few promoters).
"""

from __future__ import annotations

import numpy as np

from deepreg.data.config import CLASS_NAMES
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

    def promoters(rows: slice):
        return {"sequence": as_model_input(sequences[rows], background)}

    return _predict_blocks(model.predict_on_batch, model, promoters, len(sequences), regulators, gene_index,
                           condition_index, block_genes, block_conditions)


def _predict_blocks(call, model, gene_inputs, n_genes: int, regulators, gene_index, condition_index,
                    block_genes: int, block_conditions: int) -> np.ndarray:
    """G x C outputs of `call` on blocks of genes x conditions; `gene_inputs(rows)` gives a block's gene side."""
    regulators = np.asarray(regulators, np.float32)
    indices = _index_inputs(model, n_genes, len(regulators), gene_index, condition_index)
    out = None
    for start in range(0, n_genes, block_genes):
        genes = slice(start, min(start + block_genes, n_genes))
        side = gene_inputs(genes)
        for column in range(0, len(regulators), block_conditions):
            conditions = slice(column, column + block_conditions)
            inputs = {**side, "regulators": regulators[conditions]}
            if indices is not None:
                inputs.update(gene=indices[0][genes], condition=indices[1][conditions])
            block = np.asarray(call(inputs))
            if out is None:
                out = np.zeros((n_genes, len(regulators)) + block.shape[2:], np.float32)
            out[genes, conditions] = block
    if out is not None and out.ndim == 3:
        out = out[..., CLASS_NAMES.index("up")] - out[..., CLASS_NAMES.index("down")]
    return out


class FeaturePredictor:
    """Predictions from cached sequence-tower features, for perturbations that change few promoters.

    A knock-out changes the regulator inputs of a few conditions and the promoters of the genes with
    sites; every other promoter's tower output is the same as without it. So the tower runs once for
    all promoters (`features`), again only for the changed ones, and `predict` reads the features:
    the rest of the model is cut out of its graph from the tower's output, so it is the same function
    as `predict` (same outputs, same weights).
    """

    def __init__(self, model):
        import keras

        from deepreg.models.build import model_input_names

        every = model_input_names(model)
        graph_inputs = model.input if isinstance(model.input, dict) else dict(zip(every, model.inputs))
        names = [name for name in every if name != "sequence"]
        self.model = model
        self.tower, features = _sequence_tower(model, graph_inputs["sequence"])
        self.names = ["features", *names]
        self.rest = keras.Model([features, *(graph_inputs[name] for name in names)], model.output,
                                name=f"{model.name}_after_sequence_tower")

    def features(self, promoters: np.ndarray, block: int = 128) -> np.ndarray:
        """The tower's output for float model inputs (N x L x 4, `as_model_input`): N x F (or N x ... x F).

        A short last block is padded to a power of two, so that knock-outs masking different numbers of
        promoters reuse a few traced shapes instead of tracing the tower again for each.
        """
        outputs = []
        for start in range(0, len(promoters), block):
            chunk = promoters[start:start + block]
            padded = min(block, 1 << max(3, (len(chunk) - 1).bit_length()))
            if padded > len(chunk):
                chunk = np.concatenate([chunk, np.zeros((padded - len(chunk),) + chunk.shape[1:], chunk.dtype)])
            outputs.append(np.asarray(self.tower.predict_on_batch(chunk))[:min(block, len(promoters) - start)])
        return np.concatenate(outputs) if outputs else np.zeros((0,) + tuple(self.tower.output.shape[1:]), np.float32)

    def predict(self, features: np.ndarray, regulators: np.ndarray, *, gene_index=None, condition_index=None,
                block_genes: int = 512, block_conditions: int = 256) -> np.ndarray:
        """G x C predictions (as `predict`) from tower features G x F."""
        def call(inputs):
            return self.rest.predict_on_batch([inputs[name] for name in self.names])

        def side(rows: slice):
            return {"features": features[rows]}

        return _predict_blocks(call, self.model, side, len(features), regulators, gene_index, condition_index,
                               block_genes, block_conditions)


def _sequence_tower(model, sequence_input):
    """The block model's sequence tower and its output in this model's graph (the tower is shared with
    the pair model, so it has one call per model: the one that reads this model's `sequence` input)."""
    from deepreg.attribution._network import _find_tower

    tower = _find_tower(model, "sequence_tower", 3)
    for node in getattr(tower, "_inbound_nodes", []):
        if any(tensor is sequence_input for tensor in node.input_tensors) and len(node.outputs) == 1:
            return tower, node.outputs[0]
    raise DeepRegError(f"model '{model.name}': its sequence tower '{tower.name}' does not read the model's "
                       "`sequence` input directly; expected a DeepREG block model (deepreg.models.build)")


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
