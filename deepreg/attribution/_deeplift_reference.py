"""The DeepLIFT authors' `deeplift` package as the reference for our native DeepLIFT.

The package (0.6.13) is written against the TensorFlow 1 graph API: it needs `tensorflow.compat.v1`
in place of `tensorflow`, with v2 behaviour disabled before deeplift is imported, and it cannot share
a process with eager Keras. So the network is handed over as arrays (`Network.save`) and the package
runs in a subprocess (`python -m deepreg.attribution._deeplift_reference FOLDER`) that builds its
graph from the weights with `deeplift.layers` and `deeplift.models.GraphModel`:

- concatenation models: the real two-input graph (Input -> tower, Input -> tower, Concat, Dense,
  ...); the modality that is not being explained gets itself as reference (difference 0);
- tensor-product models: the package has no product layer, but with one modality fixed the product
  is linear in the other, so the fixed side is folded into the fusion kernel (sequence features of
  the gene: K_g[r, u] = sum_f s_f W[f, r, u]; regulator features of the condition:
  K_c[f, u] = sum_r t_r W[f, r, u]) and one graph is built per gene or per condition;
- bilinear models: likewise, the fixed side's vector (u_g, or v_c) is folded into a Dense kernel
  over the other side's features (`_bilinear_fold`), one graph per gene or per condition. That is
  the native product rule with the fixed factor's difference zero. The per-gene embedding is an
  input of its own that is its own reference (sequence scores) or part of the folded u_g (regulator
  scores); the baseline offset is left out (a constant of the pair);
- the regulator skip path (`model.regulators.skip`) is a Concat of the regulator Input and the
  tower's output (the package sums multipliers over a layer's outputs); k-mer features
  (`model.sequence.kmer`), which the package cannot compute, are computed by the caller and enter as
  an input that is its own reference: held constant, as the native code holds them.

The results are contributions multiplier x (input - reference), as the package computes them.
Slow (graph mode, one graph per gene or condition): for cross-checks on small models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from deepreg.errors import DeepRegError


# --------------------------------------------------------------------------------------------------
# Caller side (any process)
# --------------------------------------------------------------------------------------------------
def _run(network, request: dict, arrays: dict, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="deeplift-reference-") as folder:
        folder = Path(folder)
        network.save(folder)
        np.savez(folder / "inputs.npz", **arrays)
        (folder / "request.json").write_text(json.dumps(request))
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        completed = subprocess.run([sys.executable, "-m", "deepreg.attribution._deeplift_reference", str(folder)],
                                   capture_output=True, text=True, timeout=timeout, env=env)
        if completed.returncode != 0 or not (folder / "outputs.npz").is_file():
            tail = (completed.stderr or completed.stdout)[-2000:]
            raise DeepRegError(f"the deeplift package reference failed (exit {completed.returncode}): {tail}")
        with np.load(folder / "outputs.npz") as stored:
            return {key: stored[key] for key in stored.files}


def _promoter_arrays(network, sequences, gene_index, background) -> dict:
    """Promoters as model input, their genes' dataset rows and, with `model.sequence.kmer`, their k-mer features.

    The package cannot count k-mers; the counts are held constant in attribution anyway, so they are
    computed here (as the model does) and enter the reference graph as an input that is its own reference.
    """
    from deepreg.attribution.deeplift import _model_input, gene_rows, kmer_features

    promoters = _model_input(sequences, background)
    arrays = {"sequences": promoters, "gene_index": gene_rows(network, len(promoters), gene_index)}
    for step in network.sequence:
        if step.kind == "kmer":
            arrays["kmer"] = np.asarray(kmer_features(step, promoters), np.float32)
    return arrays


def _reference_arrays(references, background) -> np.ndarray:
    from deepreg.attribution.deeplift import _model_input

    references = np.asarray(references)
    return _model_input(references.reshape((-1,) + references.shape[2:]), background).reshape(references.shape)


def reference_scores(model, sequences, references, regulators, reference, *, background=None, target="output",
                     gene_index=None, timeout: float = 600) -> dict[str, np.ndarray]:
    """Both at once, in one subprocess: {'regulators': G x C x R, 'sequences': G x K x C x L x 4}."""
    from deepreg.attribution._network import read_network
    from deepreg.attribution.deeplift import regulator_reference

    network = read_network(model, target)
    regulators = np.asarray(regulators, np.float32)
    arrays = {**_promoter_arrays(network, sequences, gene_index, background), "regulators": regulators,
              "reference": regulator_reference(regulators, reference),
              "references": _reference_arrays(references, background)}
    out = _run(network, {"mode": "both"}, arrays, timeout)
    return {"regulators": out["regulators"], "sequences": out["sequences"]}


# --------------------------------------------------------------------------------------------------
# Subprocess side: TF1 graph mode and the deeplift package
# --------------------------------------------------------------------------------------------------
def _import_deeplift():
    import tensorflow as tensorflow_v2  # noqa: F401  (loads the real package before aliasing it)
    import tensorflow.compat.v1 as tf1

    tf1.disable_v2_behavior()
    sys.modules["tensorflow"] = tf1
    sys.modules["keras"] = None  # deeplift.util.get_session() tries keras' TF1 session first
    import deeplift  # noqa: F401
    from deeplift import layers, models
    from deeplift.layers import activations, convolutional, core, normalization, pooling  # noqa: F401
    return tf1, layers, models


class _Builder:
    """Builds deeplift layers from `Network` steps, naming them uniquely."""

    def __init__(self, layers_module):
        from deeplift.layers import activations, convolutional, core, pooling
        self.core, self.conv, self.pool, self.act = core, convolutional, pooling, activations
        self.name_to_layer = {}

    def add(self, layer):
        self.name_to_layer[layer.get_name()] = layer
        return layer

    def input(self, name, shape):
        return self.add(self.core.Input(batch_shape=(None,) + tuple(shape), name=name))

    def concat(self, name, inputs):
        layer = self.core.Concat(axis=1, name=name)
        layer.set_inputs(list(inputs))
        return self.add(layer)

    def chain(self, steps, previous, prefix):
        for index, step in enumerate(steps):
            name = f"{prefix}{index}_{step.name}"
            if step.kind == "kmer":
                # k-mer features: an input of their own, fed the actual promoter's values as input and reference
                counts = self.input(KMER_INPUT, (len(step.arrays["scale"]),))
                previous = counts if step.options["mode"] == "alone" else self.concat(name, [previous, counts])
                continue
            layer = self._layer(step, name)
            layer.set_inputs(previous)
            previous = self.add(layer)
        return previous

    def _layer(self, step, name):
        from deeplift.layers.convolutional import PaddingMode
        from deeplift.layers.core import ConvMxtsMode, DenseMxtsMode, MaxPoolDeepLiftMode, NonlinearMxtsMode
        if step.kind == "conv":
            return self.conv.Conv1D(kernel=step.arrays["kernel"], bias=step.arrays["bias"], stride=1,
                                    padding=PaddingMode.valid if step.options["padding"] == "valid" else PaddingMode.same,
                                    conv_mxts_mode=ConvMxtsMode.Linear, name=name)
        if step.kind == "dense":
            return self.core.Dense(kernel=step.arrays["kernel"], bias=step.arrays["bias"],
                                   dense_mxts_mode=DenseMxtsMode.Linear, name=name)
        if step.kind == "relu":
            return self.act.ReLU(nonlinear_mxts_mode=NonlinearMxtsMode.Rescale, name=name)
        if step.kind == "global_max":
            return self.pool.GlobalMaxPool1D(maxpool_deeplift_mode=MaxPoolDeepLiftMode.gradient, name=name)
        if step.kind == "max_pool":
            return self.pool.MaxPool1D(pool_length=step.options["pool"], stride=step.options["stride"],
                                       padding=PaddingMode.valid if step.options["padding"] == "valid" else PaddingMode.same,
                                       maxpool_deeplift_mode=MaxPoolDeepLiftMode.gradient, name=name)
        if step.kind == "flatten":
            return self.core.Flatten(name=name)
        if step.kind == "affine":
            from deeplift.layers.normalization import BatchNormalization
            width = len(step.arrays["scale"])
            return BatchNormalization(gamma=step.arrays["scale"], beta=step.arrays["shift"], axis=-1,
                                      mean=np.zeros(width, np.float32), var=np.ones(width, np.float32),
                                      epsilon=0.0, name=name)
        # merge_strands: the package has no max over channel pairs
        raise RuntimeError(f"the deeplift package has no layer for step {step.kind} ({step.name})")

    def regulator_tower(self, network, inp):
        """The regulator steps on `inp`; with skip, the raw input (read twice) leads their output."""
        out = self.chain(network.regulators, inp, "rtower_")
        return self.concat("regulator_skip", [inp, out]) if network.regulator_skip else out


KMER_INPUT, GENE_CONSTANTS_INPUT = "kmer", "gene_constants"


def _contributions(models, builder, output, inputs: dict, references: dict, find: str, held=None, batch_size=256):
    """Contributions to `find` of the output; `held` feeds inputs that are their own reference (if in the graph)."""
    held = {name: value for name, value in (held or {}).items() if name in builder.name_to_layer}
    inputs, references = {**inputs, **held}, {**references, **held}
    output.build_fwd_pass_vars()
    graph = models.GraphModel(builder.name_to_layer, list(inputs))
    func = graph.get_target_contribs_func(find_scores_layer_name=find, pre_activation_target_layer_name=output.get_name())
    return np.asarray(func(task_idx=0, input_data_list=inputs, input_references_list=references,
                           batch_size=batch_size, progress_update=None))


def _forward(builder, out, feed: dict) -> np.ndarray:
    import deeplift.util

    out.build_fwd_pass_vars()
    feed = {builder.name_to_layer[name].get_activation_vars(): value for name, value in feed.items()
            if name in builder.name_to_layer}
    return deeplift.util.get_session().run(out.get_activation_vars(), feed_dict=feed)


def _sequence_features(tf1, network, arrays, layers_module):
    """Sequence tower outputs, computed with the deeplift layers' forward pass."""
    sequences = arrays["sequences"]
    builder = _Builder(layers_module)
    inp = builder.input("features_sequence", sequences.shape[1:])
    out = builder.chain(network.sequence, inp, "tower_")
    return _forward(builder, out, {"features_sequence": sequences, KMER_INPUT: arrays.get("kmer")})


def _regulator_features(network, regulators, layers_module):
    if not network.regulators:
        return regulators
    builder = _Builder(layers_module)
    inp = builder.input("features_regulators", regulators.shape[1:])
    return _forward(builder, builder.regulator_tower(network, inp), {"features_regulators": regulators})


def _fused_dense(builder, kernel, bias, previous, name="fusion"):
    from deeplift.layers.core import DenseMxtsMode
    layer = builder.core.Dense(kernel=np.asarray(kernel, np.float32), bias=np.asarray(bias, np.float32),
                               dense_mxts_mode=DenseMxtsMode.Linear, name=name)
    layer.set_inputs(previous)
    return builder.add(layer)


def _head(network, builder, fused):
    return builder.chain(network.head, fused, "head_")


# -- the bilinear fusion: one side fixed, folded into a Dense kernel ---------------------------------
def _bilinear_fold(network, kernel, offset, fixed):
    """The bilinear fusion with one side fixed at `fixed` (u_g or v_c, rank d) as a Dense kernel W x H.

    kernel (W x d) and offset (W) map the moving side's features to its vector and offset. The score
    column is kernel fixed / sqrt(d) + offset, product column k kernel[:, k] fixed[k] / sqrt(d): the
    native product rule with the fixed factor's difference zero (each product is linear in the other).
    """
    scale = 1.0 / np.sqrt(network.rank)
    columns = [(kernel @ fixed) * scale + offset]
    if network.interaction:
        columns.append(kernel * fixed[None, :] * scale)
    return np.column_stack(columns).astype(np.float32)


def _gene_side(network, features, rows):
    """u = s P (+ E_g) and a = s p (+ e_g) for sequence features G x F of the genes at dataset rows `rows`."""
    weights = network.bilinear
    u, a = features @ weights["gene_kernel"], features @ weights["gene_offset"]
    if "embedding" in weights:
        u, a = u + weights["embedding"][rows], a + weights["embedding_offset"][rows]
    return u, a


def _head_bias(network, score_offset):
    return np.concatenate([[score_offset], np.zeros(network.rank if network.interaction else 0)])


def _bilinear_regulators(tf1, layers_module, models, network, arrays) -> np.ndarray:
    """Per gene: u_g and a_g fixed, the regulator graph -> Dense(fold of u_g) -> head."""
    regulators, reference = arrays["regulators"], arrays["reference"]
    u, a = _gene_side(network, _sequence_features(tf1, network, arrays, layers_module), arrays["gene_index"])
    ref = np.repeat(reference[None], len(regulators), axis=0)
    weights = network.bilinear
    scores = np.zeros((len(u), len(regulators), regulators.shape[1]), np.float32)
    for gene in range(len(u)):
        builder = _Builder(layers_module)
        tower = builder.regulator_tower(network, builder.input("regulators", regulators.shape[1:]))
        kernel = _bilinear_fold(network, weights["condition_kernel"], weights["condition_offset"], u[gene])
        output = _head(network, builder, _fused_dense(builder, kernel, _head_bias(network, a[gene]), tower))
        scores[gene] = _contributions(models, builder, output, {"regulators": regulators}, {"regulators": ref},
                                      "regulators")
    return scores


def _bilinear_sequences(layers_module, models, network, arrays, rows, refs, held, genes) -> np.ndarray:
    """Per condition: v_c and b_c fixed, the sequence graph (beside the gene's E_g, e_g) -> Dense(fold of v_c) -> head.

    rows, refs: promoters and references, one per (gene, reference); genes: their dataset rows. The
    per-gene embedding enters as an input of its own, [E_g, e_g], that is its own reference: with the
    extended kernel [P; I; 0] and offset [p; 0; 1] it gives u = s P + E_g and a = s p + e_g.
    """
    weights, rank = network.bilinear, network.rank
    phi = _regulator_features(network, arrays["regulators"], layers_module)
    v, b = phi @ weights["condition_kernel"], phi @ weights["condition_offset"]
    kernel, offset = weights["gene_kernel"], weights["gene_offset"]
    embedded = "embedding" in weights
    if embedded:
        held = {**held, GENE_CONSTANTS_INPUT: np.column_stack([weights["embedding"][genes],
                                                               weights["embedding_offset"][genes]])}
        kernel = np.vstack([kernel, np.eye(rank), np.zeros((1, rank))])
        offset = np.concatenate([offset, np.zeros(rank), [1.0]])
    scores = np.zeros((len(rows), len(v)) + rows.shape[1:], np.float32)
    for condition in range(len(v)):
        builder = _Builder(layers_module)
        tower = builder.chain(network.sequence, builder.input("sequence", rows.shape[1:]), "tower_")
        if embedded:
            tower = builder.concat("with_gene_constants", [tower, builder.input(GENE_CONSTANTS_INPUT, (rank + 1,))])
        fold = _bilinear_fold(network, kernel, offset, v[condition])
        output = _head(network, builder, _fused_dense(builder, fold, _head_bias(network, b[condition]), tower))
        scores[:, condition] = _contributions(models, builder, output, {"sequence": rows}, {"sequence": refs},
                                              "sequence", held)
    return scores


# -- the modes -----------------------------------------------------------------------------------------
def _regulators_mode(tf1, layers_module, models, network, arrays) -> np.ndarray:
    if network.fusion == "bilinear":
        return _bilinear_regulators(tf1, layers_module, models, network, arrays)
    sequences, regulators, reference = arrays["sequences"], arrays["regulators"], arrays["reference"]
    n_genes, n_conditions, n_regs = len(sequences), len(regulators), regulators.shape[1]
    scores = np.zeros((n_genes, n_conditions, n_regs), np.float32)
    ref = np.repeat(reference[None], n_conditions, axis=0)
    if network.fusion == "tensor":
        features = _sequence_features(tf1, network, arrays, layers_module)
        tensor = network.fusion_tensor()
        for gene in range(n_genes):
            builder = _Builder(layers_module)
            tower = builder.regulator_tower(network, builder.input("regulators", (n_regs,)))
            folded = np.einsum("f,fru->ru", features[gene], tensor).astype(np.float32)
            output = _head(network, builder, _fused_dense(builder, folded, network.fusion_bias, tower))
            scores[gene] = _contributions(models, builder, output, {"regulators": regulators},
                                          {"regulators": ref}, "regulators")
        return scores
    builder, output = _concat_graph(network, layers_module, sequences.shape[1:], n_regs)
    pair_sequences = np.repeat(sequences, n_conditions, axis=0)
    pair_regulators = np.tile(regulators, (n_genes, 1))
    held = {KMER_INPUT: np.repeat(arrays["kmer"], n_conditions, axis=0)} if "kmer" in arrays else {}
    contributions = _contributions(models, builder, output,
                                   {"sequence": pair_sequences, "regulators": pair_regulators},
                                   {"sequence": pair_sequences, "regulators": np.tile(ref, (n_genes, 1))}, "regulators",
                                   held)
    return contributions.reshape(n_genes, n_conditions, n_regs)


def _concat_graph(network, layers_module, sequence_shape, n_regs):
    builder = _Builder(layers_module)
    sequence_out = builder.chain(network.sequence, builder.input("sequence", sequence_shape), "tower_")
    regulator_out = builder.regulator_tower(network, builder.input("regulators", (n_regs,)))
    concat = builder.concat("concat", [sequence_out, regulator_out])
    output = _head(network, builder, _fused_dense(builder, network.fusion_kernel, network.fusion_bias, concat))
    return builder, output


def _sequences_mode(tf1, layers_module, models, network, arrays) -> np.ndarray:
    sequences, references, regulators = arrays["sequences"], arrays["references"], arrays["regulators"]
    n_genes, n_refs = references.shape[:2]
    n_conditions = len(regulators)
    shape = sequences.shape[1:]
    rows = np.repeat(sequences, n_refs, axis=0)
    refs = references.reshape((-1,) + shape)
    held = {KMER_INPUT: np.repeat(arrays["kmer"], n_refs, axis=0)} if "kmer" in arrays else {}
    if network.fusion == "bilinear":
        scores = _bilinear_sequences(layers_module, models, network, arrays, rows, refs, held,
                                     np.repeat(arrays["gene_index"], n_refs))
        return scores.reshape((n_genes, n_refs, n_conditions) + shape)
    scores = np.zeros((n_genes * n_refs, n_conditions) + shape, np.float32)
    if network.fusion == "tensor":
        features = _regulator_features(network, regulators, layers_module)
        tensor = network.fusion_tensor()
        for condition in range(n_conditions):
            builder = _Builder(layers_module)
            tower = builder.chain(network.sequence, builder.input("sequence", shape), "tower_")
            folded = np.einsum("r,fru->fu", features[condition], tensor).astype(np.float32)
            output = _head(network, builder, _fused_dense(builder, folded, network.fusion_bias, tower))
            scores[:, condition] = _contributions(models, builder, output, {"sequence": rows}, {"sequence": refs},
                                                  "sequence", held)
    else:
        builder, output = _concat_graph(network, layers_module, shape, regulators.shape[1])
        for condition in range(n_conditions):
            fixed = np.repeat(regulators[condition][None], len(rows), axis=0)
            scores[:, condition] = _contributions(models, builder, output, {"sequence": rows, "regulators": fixed},
                                                  {"sequence": refs, "regulators": fixed}, "sequence", held)
    return scores.reshape((n_genes, n_refs, n_conditions) + shape)


def main(folder: str) -> int:
    folder = Path(folder)
    tf1, layers_module, models = _import_deeplift()
    from deepreg.attribution._network import Network  # numpy only: safe in the TF1 process

    network = Network.load(folder)
    request = json.loads((folder / "request.json").read_text())
    with np.load(folder / "inputs.npz") as stored:
        arrays = {key: stored[key] for key in stored.files}
    if request["mode"] == "both":
        outputs = {"regulators": _regulators_mode(tf1, layers_module, models, network, arrays),
                   "sequences": _sequences_mode(tf1, layers_module, models, network, arrays)}
    else:
        raise SystemExit(f"unknown mode {request['mode']}")
    np.savez(folder / "outputs.npz", **outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
