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
  K_c[f, u] = sum_r t_r W[f, r, u]) and one graph is built per gene or per condition.

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


def reference_regulator_scores(model, sequences, regulators, reference, *, background=None, target="output",
                               timeout: float = 600) -> np.ndarray:
    """Contributions of the regulator inputs, G x C x R, from the deeplift package."""
    from deepreg.attribution._network import read_network
    from deepreg.attribution.deeplift import _model_input, regulator_reference

    network = read_network(model, target)
    regulators = np.asarray(regulators, np.float32)
    arrays = {"sequences": _model_input(sequences, background), "regulators": regulators,
              "reference": regulator_reference(regulators, reference)}
    return _run(network, {"mode": "regulators"}, arrays, timeout)["scores"]


def reference_scores(model, sequences, references, regulators, reference, *, background=None, target="output",
                     timeout: float = 600) -> dict[str, np.ndarray]:
    """Both at once, in one subprocess: {'regulators': G x C x R, 'sequences': G x K x C x L x 4}."""
    from deepreg.attribution._network import read_network
    from deepreg.attribution.deeplift import _model_input, regulator_reference

    network = read_network(model, target)
    regulators = np.asarray(regulators, np.float32)
    references = np.asarray(references)
    arrays = {"sequences": _model_input(sequences, background), "regulators": regulators,
              "reference": regulator_reference(regulators, reference),
              "references": _model_input(references.reshape((-1,) + references.shape[2:]), background).reshape(
                  references.shape)}
    out = _run(network, {"mode": "both"}, arrays, timeout)
    return {"regulators": out["regulators"], "sequences": out["sequences"]}


def reference_sequence_scores(model, sequences, references, regulators, *, background=None, target="output",
                              timeout: float = 600) -> np.ndarray:
    """Contributions m x (x - x0) of promoter inputs, G x K x C x L x 4 (K references per gene)."""
    from deepreg.attribution._network import read_network
    from deepreg.attribution.deeplift import _model_input

    network = read_network(model, target)
    sequences = np.asarray(sequences)
    references = np.asarray(references)
    n_genes, n_refs = references.shape[:2]
    arrays = {"sequences": _model_input(sequences, background),
              "references": _model_input(references.reshape((-1,) + references.shape[2:]), background).reshape(
                  references.shape),
              "regulators": np.asarray(regulators, np.float32)}
    return _run(network, {"mode": "sequences"}, arrays, timeout)["scores"]


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

    def chain(self, steps, previous, prefix):
        from deeplift.layers.core import DenseMxtsMode, ConvMxtsMode, NonlinearMxtsMode, MaxPoolDeepLiftMode
        from deeplift.layers.convolutional import PaddingMode
        for index, step in enumerate(steps):
            name = f"{prefix}{index}_{step.name}"
            if step.kind == "conv":
                layer = self.conv.Conv1D(kernel=step.arrays["kernel"], bias=step.arrays["bias"], stride=1,
                                         padding=PaddingMode.valid if step.options["padding"] == "valid" else PaddingMode.same,
                                         conv_mxts_mode=ConvMxtsMode.Linear, name=name)
            elif step.kind == "dense":
                layer = self.core.Dense(kernel=step.arrays["kernel"], bias=step.arrays["bias"],
                                        dense_mxts_mode=DenseMxtsMode.Linear, name=name)
            elif step.kind == "relu":
                layer = self.act.ReLU(nonlinear_mxts_mode=NonlinearMxtsMode.Rescale, name=name)
            elif step.kind == "global_max":
                layer = self.pool.GlobalMaxPool1D(maxpool_deeplift_mode=MaxPoolDeepLiftMode.gradient, name=name)
            elif step.kind == "max_pool":
                layer = self.pool.MaxPool1D(pool_length=step.options["pool"], stride=step.options["stride"],
                                            padding=PaddingMode.valid if step.options["padding"] == "valid" else PaddingMode.same,
                                            maxpool_deeplift_mode=MaxPoolDeepLiftMode.gradient, name=name)
            elif step.kind == "flatten":
                layer = self.core.Flatten(name=name)
            elif step.kind == "affine":
                from deeplift.layers.normalization import BatchNormalization
                width = len(step.arrays["scale"])
                layer = BatchNormalization(gamma=step.arrays["scale"], beta=step.arrays["shift"], axis=-1,
                                           mean=np.zeros(width, np.float32), var=np.ones(width, np.float32),
                                           epsilon=0.0, name=name)
            else:  # merge_strands: the package has no max over channel pairs
                raise RuntimeError(f"the deeplift package has no layer for step {step.kind} ({step.name})")
            layer.set_inputs(previous)
            previous = self.add(layer)
        return previous


def _contributions(models, builder, output, inputs: dict, references: dict, find: str, batch_size=256):
    output.build_fwd_pass_vars()
    graph = models.GraphModel(builder.name_to_layer, list(inputs))
    func = graph.get_target_contribs_func(find_scores_layer_name=find, pre_activation_target_layer_name=output.get_name())
    return np.asarray(func(task_idx=0, input_data_list=inputs, input_references_list=references,
                           batch_size=batch_size, progress_update=None))


def _sequence_features(tf1, network, sequences, layers_module):
    """Sequence tower outputs, computed with the deeplift layers' forward pass."""
    builder = _Builder(layers_module)
    inp = builder.input("features_sequence", sequences.shape[1:])
    out = builder.chain(network.sequence, inp, "tower_")
    out.build_fwd_pass_vars()
    import deeplift.util
    session = deeplift.util.get_session()
    return session.run(out.get_activation_vars(), feed_dict={inp.get_activation_vars(): sequences})


def _regulator_features(network, regulators, layers_module):
    builder = _Builder(layers_module)
    inp = builder.input("features_regulators", regulators.shape[1:])
    if not network.regulators:
        return regulators
    out = builder.chain(network.regulators, inp, "rtower_")
    out.build_fwd_pass_vars()
    import deeplift.util
    return deeplift.util.get_session().run(out.get_activation_vars(), feed_dict={inp.get_activation_vars(): regulators})


def _fused_dense(network, kernel, builder, previous, name="fusion"):
    from deeplift.layers.core import DenseMxtsMode
    layer = builder.core.Dense(kernel=kernel, bias=network.fusion_bias, dense_mxts_mode=DenseMxtsMode.Linear, name=name)
    layer.set_inputs(previous)
    return builder.add(layer)


def _head(network, builder, fused):
    return builder.chain(network.head, fused, "head_")


def _regulators_mode(tf1, layers_module, models, network, arrays) -> np.ndarray:
    sequences, regulators, reference = arrays["sequences"], arrays["regulators"], arrays["reference"]
    n_genes, n_conditions, n_regs = len(sequences), len(regulators), regulators.shape[1]
    scores = np.zeros((n_genes, n_conditions, n_regs), np.float32)
    ref = np.repeat(reference[None], n_conditions, axis=0)
    if network.fusion == "tensor":
        features = _sequence_features(tf1, network, sequences, layers_module)
        tensor = network.fusion_tensor()
        for gene in range(n_genes):
            builder = _Builder(layers_module)
            inp = builder.input("regulators", (n_regs,))
            tower = builder.chain(network.regulators, inp, "rtower_")
            folded = np.einsum("f,fru->ru", features[gene], tensor).astype(np.float32)
            output = _head(network, builder, _fused_dense(network, folded, builder, tower))
            scores[gene] = _contributions(models, builder, output, {"regulators": regulators},
                                          {"regulators": ref}, "regulators")
        return scores
    builder, output = _concat_graph(network, layers_module, sequences.shape[1:], n_regs)
    pair_sequences = np.repeat(sequences, n_conditions, axis=0)
    pair_regulators = np.tile(regulators, (n_genes, 1))
    contributions = _contributions(models, builder, output,
                                   {"sequence": pair_sequences, "regulators": pair_regulators},
                                   {"sequence": pair_sequences, "regulators": np.tile(ref, (n_genes, 1))}, "regulators")
    return contributions.reshape(n_genes, n_conditions, n_regs)


def _concat_graph(network, layers_module, sequence_shape, n_regs):
    builder = _Builder(layers_module)
    sequence_in = builder.input("sequence", sequence_shape)
    regulators_in = builder.input("regulators", (n_regs,))
    sequence_out = builder.chain(network.sequence, sequence_in, "tower_")
    regulator_out = builder.chain(network.regulators, regulators_in, "rtower_")
    concat = builder.core.Concat(axis=1, name="concat")
    concat.set_inputs([sequence_out, regulator_out])
    builder.add(concat)
    output = _head(network, builder, _fused_dense(network, network.fusion_kernel, builder, concat))
    return builder, output


def _sequences_mode(tf1, layers_module, models, network, arrays) -> np.ndarray:
    sequences, references, regulators = arrays["sequences"], arrays["references"], arrays["regulators"]
    n_genes, n_refs = references.shape[:2]
    n_conditions = len(regulators)
    shape = sequences.shape[1:]
    rows = np.repeat(sequences, n_refs, axis=0)
    refs = references.reshape((-1,) + shape)
    scores = np.zeros((n_genes * n_refs, n_conditions) + shape, np.float32)
    if network.fusion == "tensor":
        features = _regulator_features(network, regulators, layers_module)
        tensor = network.fusion_tensor()
        for condition in range(n_conditions):
            builder = _Builder(layers_module)
            inp = builder.input("sequence", shape)
            tower = builder.chain(network.sequence, inp, "tower_")
            folded = np.einsum("r,fru->fu", features[condition], tensor).astype(np.float32)
            output = _head(network, builder, _fused_dense(network, folded, builder, tower))
            scores[:, condition] = _contributions(models, builder, output, {"sequence": rows}, {"sequence": refs},
                                                  "sequence")
    else:
        builder, output = _concat_graph(network, layers_module, shape, regulators.shape[1])
        for condition in range(n_conditions):
            fixed = np.repeat(regulators[condition][None], len(rows), axis=0)
            scores[:, condition] = _contributions(models, builder, output, {"sequence": rows, "regulators": fixed},
                                                  {"sequence": refs, "regulators": fixed}, "sequence")
    return scores.reshape((n_genes, n_refs, n_conditions) + shape)


def main(folder: str) -> int:
    folder = Path(folder)
    tf1, layers_module, models = _import_deeplift()
    from deepreg.attribution._network import Network  # numpy only: safe in the TF1 process

    network = Network.load(folder)
    request = json.loads((folder / "request.json").read_text())
    with np.load(folder / "inputs.npz") as stored:
        arrays = {key: stored[key] for key in stored.files}
    if request["mode"] == "regulators":
        outputs = {"scores": _regulators_mode(tf1, layers_module, models, network, arrays)}
    elif request["mode"] == "sequences":
        outputs = {"scores": _sequences_mode(tf1, layers_module, models, network, arrays)}
    elif request["mode"] == "both":
        outputs = {"regulators": _regulators_mode(tf1, layers_module, models, network, arrays),
                   "sequences": _sequences_mode(tf1, layers_module, models, network, arrays)}
    else:
        raise SystemExit(f"unknown mode {request['mode']}")
    np.savez(folder / "outputs.npz", **outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
