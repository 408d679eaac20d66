"""A DeepREG block model read into plain arrays: the steps that attribution methods walk through.

Attribution needs more than `model.predict`: it walks the network layer by layer (DeepLIFT's rescale
rule, gradients, folding one modality into the fusion kernel). This module reads a Keras block model
into a `Network` of numpy weights and simple steps, the one description that the native DeepLIFT
(`deeplift.py`), the `deeplift`-package reference (`_deeplift_reference.py`, in its own process) and
the knock-outs share.

Supported family (anything else is refused with a `DeepRegError` naming the layer or the key):

- sequence tower: SequenceConv or Conv1D (stride 1, valid or same padding, ReLU or linear; mirrored
  reverse-complement filters and fused pools included), BatchNormalization and its mirrored form
  (affine maps at inference), MaxPooling1D, GlobalMaxPooling1D, MergeStrands (a max over a filter
  and its mirror), Flatten, Dense, Activation('relu'), Dropout and the reverse-complement
  augmentation (identities at inference), and the k-mer counts of `model.sequence.kmer` (a `KMER`
  step: counts, their standardisation, appended to the conv features or alone); recurrent layers are
  refused;
- regulator tower: Dense layers (ReLU or linear), or none (the raw regulator vector), with the raw
  vector passed on beside them (`model.regulators.skip`); `model.regulators.layer_norm` is refused;
- fusion: `TensorProductDense` (kernel F*R x U, row index f*R + r), `ConcatDense` (kernel F+R x U) or
  `BilinearFusion` (its projections, with or without the per-gene embedding);
- head: Dropout and Dense layers (ReLU or linear); the output layer is linear (regression) or softmax
  (classification: the target is a combination of the pre-softmax logits). A `BaselineOffset` after
  it adds the same table entry to a pair's output at any input and reference: it is left out.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from deepreg.data.config import CLASS_NAMES
from deepreg.errors import DeepRegError

# Step kinds. Every step maps an array to an array; only "relu" is nonlinear (besides the max pools,
# which DeepLIFT treats by routing multipliers to the maximum, as the deeplift package does, and the
# k-mer counts, which are held at the actual promoter's value).
CONV, DENSE, AFFINE, RELU, MAX_POOL, GLOBAL_MAX, FLATTEN, MERGE_STRANDS, KMER = (
    "conv", "dense", "affine", "relu", "max_pool", "global_max", "flatten", "merge_strands", "kmer")
TENSOR, CONCAT, BILINEAR = "tensor", "concat", "bilinear"
_META = ("fusion", "sequence_length", "n_regulators", "sequence_width", "regulator_width", "task", "target",
         "interaction", "regulator_skip")


@dataclasses.dataclass
class Step:
    kind: str
    name: str
    arrays: dict = dataclasses.field(default_factory=dict)   # kernel, bias, scale, shift
    options: dict = dataclasses.field(default_factory=dict)  # padding, pool, stride; k and mode (KMER)


@dataclasses.dataclass
class Network:
    """The parts of a block model as numpy arrays.

    `head` starts with the fusion layer's activation (none for the bilinear fusion) and ends with the
    output dense layer, whose kernel has been reduced to one column: the attribution target (the
    regression output, or a weighted sum of class logits for classification).

    Tensor and concatenation fusions keep `fusion_kernel` and `fusion_bias`; the bilinear fusion keeps
    `bilinear` (`BilinearFusion.attribution_weights()`: P, p, Q, q and maybe E, e) and `interaction`
    (whether the head reads [score, u * v / sqrt(rank)] or the score alone). `regulator_skip`: the
    regulator features are [raw regulator vector, output of the regulator steps].
    """

    sequence: list[Step]
    regulators: list[Step]
    fusion: str
    head: list[Step]
    sequence_length: int
    n_regulators: int
    sequence_width: int
    regulator_width: int
    task: str = "regression"
    target: str = "output"
    fusion_kernel: np.ndarray | None = None
    fusion_bias: np.ndarray | None = None
    bilinear: dict | None = None
    interaction: bool = False
    regulator_skip: bool = False

    @property
    def units(self) -> int:
        return int(self.fusion_bias.shape[0])

    @property
    def rank(self) -> int:
        return int(self.bilinear["gene_kernel"].shape[1])

    @property
    def embedded_genes(self) -> int:
        """Rows of the bilinear fusion's per-gene embedding (0: none): gene indices must be below it."""
        if self.bilinear is None or "embedding" not in self.bilinear:
            return 0
        return int(self.bilinear["embedding"].shape[0])

    @property
    def kmer_mode(self) -> str | None:
        """'concat' (k-mer counts beside the conv features), 'alone' (a k-mer tower) or None."""
        modes = [step.options["mode"] for step in self.sequence if step.kind == KMER]
        return modes[0] if modes else None

    def fusion_tensor(self) -> np.ndarray:
        """The tensor-product kernel as F x R x U."""
        return self.fusion_kernel.reshape(self.sequence_width, self.regulator_width, self.units)

    def conv_steps(self) -> list[Step]:
        return [step for step in self.sequence if step.kind == CONV]

    # -- files: how the reference subprocess receives the network --------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {key: getattr(self, key) for key in ("fusion_kernel", "fusion_bias") if getattr(self, key) is not None}
        arrays.update({f"bilinear.{key}": value for key, value in (self.bilinear or {}).items()})
        meta = {key: getattr(self, key) for key in _META}
        meta["bilinear"] = None if self.bilinear is None else sorted(self.bilinear)
        for part in ("sequence", "regulators", "head"):
            meta[part] = []
            for index, step in enumerate(getattr(self, part)):
                meta[part].append({"kind": step.kind, "name": step.name, "options": step.options,
                                   "arrays": sorted(step.arrays)})
                for key, value in step.arrays.items():
                    arrays[f"{part}.{index}.{key}"] = value
        np.savez(folder / "network.npz", **arrays)
        (folder / "network.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: Path) -> "Network":
        meta = json.loads((folder / "network.json").read_text())
        with np.load(folder / "network.npz") as stored:
            arrays = {key: stored[key] for key in stored.files}
        parts = {}
        for part in ("sequence", "regulators", "head"):
            parts[part] = [Step(item["kind"], item["name"], {key: arrays[f"{part}.{index}.{key}"] for key in item["arrays"]},
                                item["options"]) for index, item in enumerate(meta[part])]
        bilinear = None if meta["bilinear"] is None else {key: arrays[f"bilinear.{key}"] for key in meta["bilinear"]}
        return cls(fusion_kernel=arrays.get("fusion_kernel"), fusion_bias=arrays.get("fusion_bias"), bilinear=bilinear,
                   **{key: meta[key] for key in _META}, **parts)


def _activation_name(layer) -> str:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


def _activation_step(layer, where: str) -> list[Step]:
    name = _activation_name(layer)
    if name == "relu":
        return [Step(RELU, f"{layer.name}_relu")]
    if name == "linear":
        return []
    raise DeepRegError(f"attribution: layer '{layer.name}' ({where}) has activation {name!r}; "
                       "DeepLIFT here supports relu and linear")


def _unsupported(layer, where: str) -> DeepRegError:
    return DeepRegError(
        f"attribution: layer '{layer.name}' ({type(layer).__name__}) in the {where} is not supported; "
        "supported: Conv1D / pooling / k-mer / Dense towers with a tensor-product, concatenation or bilinear fusion "
        "and a dense head")


def _tower_layers(tower) -> list:
    layers = [layer for layer in tower.layers if type(layer).__name__ != "InputLayer"]
    for layer in layers:
        if len(getattr(layer, "_inbound_nodes", [])) > 1:
            raise DeepRegError(f"attribution: layer '{layer.name}' is used more than once; only chains are supported")
    return layers


def _conv_step(name: str, kernel, bias, padding: str) -> Step:
    kernel = np.asarray(kernel, dtype=np.float32)
    bias = np.zeros(kernel.shape[-1], np.float32) if bias is None else np.asarray(bias, np.float32)
    return Step(CONV, name, {"kernel": kernel, "bias": bias}, {"padding": padding})


def _pool_steps(name: str, pool, stride: int) -> list[Step]:
    if pool == "none":
        return []
    if pool == "global":
        return [Step(GLOBAL_MAX, f"{name}_global_max")]
    return [Step(MAX_POOL, f"{name}_max_pool", options={"pool": int(pool), "stride": int(stride), "padding": "valid"})]


def _sequence_conv(layer) -> list[Step]:
    """deepreg's SequenceConv: conv (mirrored filters appended), bias, activation, then its fused pool.

    The layer pools before adding the bias and activating; with a non-decreasing activation that is
    the same function as conv -> bias -> activation -> pool, the order DeepLIFT is defined on here.
    """
    kernel = layer.full_kernel()
    bias = layer.full_bias() if layer.use_bias else None
    steps = [_conv_step(layer.name, np.asarray(kernel), None if bias is None else np.asarray(bias), layer.padding)]
    steps.extend(_activation_step(layer, "sequence tower"))
    steps.extend(_pool_steps(layer.name, layer.pool, layer.pool_stride))
    return steps


def _sequence_steps(tower) -> list[Step]:
    layers = _tower_layers(tower)
    branch = _kmer_branch(layers)
    joined = bool(branch) and any(type(layer).__name__ == "Concatenate" and
                                  any(source is branch[-1] for source in _inbound_layers(layer)) for layer in layers)
    steps: list[Step] = []
    for layer in layers:
        if any(layer is member for member in branch):
            if layer is branch[0] and not joined:
                if steps:
                    raise _unsupported(layer, "sequence tower")
                steps.append(_kmer_step(branch, "alone"))
        elif type(layer).__name__ == "Concatenate":
            steps.append(_kmer_join(layer, branch))
        else:
            steps.extend(_sequence_layer_steps(layer))
    return steps


def _inbound_layers(layer) -> list:
    """The layers whose outputs `layer` reads (in its first call)."""
    nodes = getattr(layer, "_inbound_nodes", [])
    return [tensor._keras_history.operation for tensor in nodes[0].input_tensors] if nodes else []


def _kmer_branch(layers) -> list:
    """The k-mer counts layer and the batch-norm / dropout layers right after it (empty: no k-mer counts)."""
    branch = [layer for layer in layers if type(layer).__name__ == "GeneKmerCounts"][:1]
    for layer in layers:
        inbound = _inbound_layers(layer)
        if (branch and type(layer).__name__ in ("BatchNormalization", "Dropout") and len(inbound) == 1
                and inbound[0] is branch[-1]):
            branch.append(layer)
    return branch


def _kmer_step(branch, mode: str) -> Step:
    """k-mer counts and their standardisation (a batch-norm: an affine map at inference) as one step.

    The counts are piecewise constant in the promoter (no gradient): attribution holds them at the
    actual promoter's value, in the input and in every reference.
    """
    counts = branch[0]
    width = counts.n_kmers * (1 + len(counts.proximal))  # whole promoter, then each proximal window
    scale, shift = np.ones(width, np.float32), np.zeros(width, np.float32)
    for layer in branch[1:]:
        if type(layer).__name__ == "BatchNormalization":
            affine = _batch_norm(layer).arrays
            scale, shift = scale * affine["scale"], shift * affine["scale"] + affine["shift"]
    return Step(KMER, counts.name, {"scale": scale, "shift": shift},
                {"k": int(counts.k), "proximal": [int(w) for w in counts.proximal], "mode": mode})


def _kmer_join(layer, branch) -> Step:
    """The Concatenate of the conv features and the k-mer counts (in that order): a 'concat' KMER step."""
    inbound = _inbound_layers(layer)
    if not branch or len(inbound) != 2 or inbound[1] is not branch[-1] or layer.axis not in (-1, 1):
        raise _unsupported(layer, "sequence tower")
    return _kmer_step(branch, "concat")


def _sequence_layer_steps(layer) -> list[Step]:
    """The steps of one layer of the sequence tower's chain (none for identities at inference)."""
    kind = type(layer).__name__
    if kind == "SequenceConv":
        return _sequence_conv(layer)
    if kind == "Conv1D":
        return _conv1d_steps(layer)
    if kind == "MaxPooling1D":
        if layer.padding != "valid":
            raise DeepRegError(f"attribution: MaxPooling1D '{layer.name}' padding {layer.padding!r} is not supported")
        return _pool_steps(layer.name, int(layer.pool_size[0]), int(layer.strides[0]))
    if kind == "GlobalMaxPooling1D" and not getattr(layer, "keepdims", False):
        return [Step(GLOBAL_MAX, layer.name)]
    if kind == "Flatten":
        return [Step(FLATTEN, layer.name)]
    if kind == "BatchNormalization":
        return [_batch_norm(layer)]
    if kind == "MirroredBatchNormalization":
        step = _batch_norm(layer.shared, layer.name)
        for key in ("scale", "shift"):
            step.arrays[key] = np.concatenate([step.arrays[key], step.arrays[key][::-1]])
        return [step]
    if kind == "MergeStrands":
        return [Step(MERGE_STRANDS, layer.name)]
    if kind == "Dense":
        return _dense_step(layer, "sequence tower")
    if kind == "Activation":
        return _activation_step(layer, "sequence tower")
    if kind == "ReLU":
        return [Step(RELU, layer.name)]
    if kind in ("Dropout", "SpatialDropout1D", "GaussianNoise", "RandomReverseComplement"):
        return []
    raise _unsupported(layer, "sequence tower")


def _conv1d_steps(layer) -> list[Step]:
    if tuple(layer.strides) != (1,) or tuple(layer.dilation_rate) != (1,) or getattr(layer, "groups", 1) != 1:
        raise DeepRegError(f"attribution: Conv1D '{layer.name}' has strides/dilation/groups other than 1")
    if layer.padding not in ("valid", "same") or layer.data_format != "channels_last":
        raise DeepRegError(f"attribution: Conv1D '{layer.name}' padding {layer.padding!r} is not supported")
    step = _conv_step(layer.name, layer.kernel.numpy(), layer.bias.numpy() if layer.use_bias else None, layer.padding)
    return [step, *_activation_step(layer, "sequence tower")]


def _batch_norm(layer, name: str | None = None) -> Step:
    gamma = layer.gamma.numpy() if layer.scale else 1.0
    beta = layer.beta.numpy() if layer.center else 0.0
    scale = gamma / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    shift = beta - layer.moving_mean.numpy() * scale
    width = int(layer.moving_mean.shape[0])
    return Step(AFFINE, name or layer.name, {"scale": np.broadcast_to(scale, (width,)).astype(np.float32),
                                     "shift": np.broadcast_to(shift, (width,)).astype(np.float32)})


def _dense_step(layer, where: str) -> list[Step]:
    kernel = np.asarray(layer.kernel.numpy(), dtype=np.float32)
    bias = np.asarray(layer.bias.numpy(), dtype=np.float32) if layer.use_bias else np.zeros(kernel.shape[1], np.float32)
    return [Step(DENSE, layer.name, {"kernel": kernel, "bias": bias}), *_activation_step(layer, where)]


def _regulator_steps(tower) -> tuple[list[Step], bool]:
    """The regulator tower's chain of steps, and whether the raw regulator vector leads its output (skip)."""
    steps: list[Step] = []
    layers = _tower_layers(tower)
    for index, layer in enumerate(layers):
        kind = type(layer).__name__
        if kind == "Dense":
            steps.extend(_dense_step(layer, "regulator tower"))
        elif kind == "BatchNormalization":
            steps.append(_batch_norm(layer))
        elif kind == "LayerNormalization":
            raise DeepRegError(f"attribution: model.regulators.layer_norm is not supported (layer '{layer.name}'): "
                               "DeepLIFT has no rule for a per-sample normalisation and the deeplift package no layer")
        elif kind == "Concatenate" and index == len(layers) - 1 and _is_skip(layer):
            return steps, True
        elif kind in ("Activation", "ReLU"):
            steps.extend(_activation_step(layer, "regulator tower") if kind == "Activation"
                         else [Step(RELU, layer.name)])
        elif kind not in ("Dropout", "GaussianNoise"):
            raise _unsupported(layer, "regulator tower")
    return steps, False


def _is_skip(layer) -> bool:
    """A Concatenate of the tower's raw input and the output of its dense layers (`model.regulators.skip`)."""
    inbound = _inbound_layers(layer)
    return (len(inbound) == 2 and type(inbound[0]).__name__ == "InputLayer"
            and type(inbound[1]).__name__ != "InputLayer" and layer.axis in (-1, 1))


def target_weights(task: str, n_outputs: int, target: str | int) -> np.ndarray:
    """Weights on the output units that define the scalar being attributed.

    Regression: the output itself. Classification: `up_minus_down` (logit of up minus logit of down,
    signed like a log ratio; the default), or one class by name or index (its pre-softmax logit).
    """
    if task == "regression":
        return np.ones(1, np.float32)
    weights = np.zeros(n_outputs, np.float32)
    if target in ("output", "up_minus_down"):
        weights[CLASS_NAMES.index("up")] = 1.0
        weights[CLASS_NAMES.index("down")] = -1.0
    elif isinstance(target, int) or str(target).isdigit():
        weights[int(target)] = 1.0
    elif target in CLASS_NAMES:
        weights[CLASS_NAMES.index(target)] = 1.0
    else:
        raise DeepRegError(f"attribution target {target!r}: expected up_minus_down, a class name "
                           f"({', '.join(CLASS_NAMES)}) or a class index")
    return weights


def _find_tower(model, name: str, rank: int):
    try:
        return model.get_layer(name)
    except ValueError:
        pass
    candidates = [layer for layer in model.layers if hasattr(layer, "layers") and
                  len(getattr(layer, "inputs", []) or []) == 1 and len(layer.inputs[0].shape) == rank]
    if len(candidates) != 1:
        raise DeepRegError(f"attribution: cannot find the {name} of model '{model.name}'")
    return candidates[0]


def read_network(model, target: str | int = "output") -> Network:
    """Read a DeepREG block model (as built by `deepreg.models.build`) into a `Network`."""
    from deepreg.models.bilinear import BilinearFusion
    from deepreg.models.build import ensemble_members
    from deepreg.models.layers import ConcatDense, TensorProductDense

    if isinstance(model, Network):
        return model
    members = ensemble_members(model)
    if len(members) > 1:
        raise DeepRegError(f"attribution: model '{model.name}' is the mean of {len(members)} networks "
                           "(training.ensemble), and DeepLIFT here reads one network; attribute a model trained "
                           "with training.ensemble: 1")
    fusion_layers = [layer for layer in model.layers
                     if isinstance(layer, (TensorProductDense, ConcatDense, BilinearFusion))]
    if len(fusion_layers) != 1:
        raise DeepRegError(f"attribution: model '{model.name}' has no tensor-product, concatenation or bilinear "
                           "fusion layer (other fusions are not supported)")
    fusion = fusion_layers[0]
    sequence_tower = _find_tower(model, "sequence_tower", 3)
    regulator_tower = _find_tower(model, "regulator_tower", 2)
    regulator_steps, skip = _regulator_steps(regulator_tower)
    bilinear = isinstance(fusion, BilinearFusion)
    head, task = _head_steps(model, fusion, target, [] if bilinear else _activation_step(fusion, "fusion"))
    if bilinear and fusion.n_conditions:
        raise DeepRegError(f"attribution: model '{model.name}' has a per-condition embedding "
                           "(model.condition_embedding), which DeepLIFT here does not read; attribute a model "
                           "without it")
    if any(type(layer).__name__ == "ExpressionProfile" for layer in model.layers):
        raise DeepRegError(f"attribution: model '{model.name}' reads each gene's own training expression "
                           "(model.profile), which is neither promoter nor regulators and which DeepLIFT here does "
                           "not read; attribute a model without it")
    if bilinear:
        kind, weights = BILINEAR, {"bilinear": fusion.attribution_weights(), "interaction": fusion.interaction}
    else:
        kind = TENSOR if isinstance(fusion, TensorProductDense) else CONCAT
        weights = {"fusion_kernel": np.asarray(fusion.kernel.numpy(), np.float32),
                   "fusion_bias": np.asarray(fusion.bias.numpy(), np.float32)}
    return Network(sequence=_sequence_steps(sequence_tower), regulators=regulator_steps, fusion=kind, head=head,
                   sequence_length=int(sequence_tower.inputs[0].shape[1]),
                   n_regulators=int(regulator_tower.inputs[0].shape[1]),
                   sequence_width=int(fusion.sequence_width), regulator_width=int(fusion.regulator_width),
                   task=task, target=str(target), regulator_skip=skip, **weights)


def _head_steps(model, fusion, target, head: list[Step]) -> tuple[list[Step], str]:
    """The dense layers after the fusion (appended to `head`), the output reduced to the target, and the task.

    A `BaselineOffset` (`model.offset`) adds a fixed table entry per (gene, condition): the same at an
    input and at its reference, so it changes no difference and no score, and is left out.
    """
    dense_layers = []
    for layer in model.layers[model.layers.index(fusion) + 1:]:
        kind = type(layer).__name__
        if kind in ("Dropout", "SqueezeLast", "GaussianNoise", "InputLayer", "BaselineOffset"):
            continue
        if kind != "Dense":
            raise _unsupported(layer, "head")
        dense_layers.append(layer)
    if not dense_layers:
        raise DeepRegError("attribution: the model has no output layer after the fusion")
    for layer in dense_layers[:-1]:
        head.extend(_dense_step(layer, "head"))
    output = dense_layers[-1]
    output_activation = _activation_name(output)
    task = "classification" if output_activation == "softmax" else "regression"
    if output_activation not in ("linear", "softmax"):
        raise DeepRegError(f"attribution: output layer activation {output_activation!r} is not supported")
    kernel = np.asarray(output.kernel.numpy(), np.float32)
    bias = np.asarray(output.bias.numpy(), np.float32) if output.use_bias else np.zeros(kernel.shape[1], np.float32)
    weights = target_weights(task, kernel.shape[1], target)
    head.append(Step(DENSE, output.name, {"kernel": (kernel @ weights)[:, None].astype(np.float32),
                                          "bias": np.array([bias @ weights], np.float32)}))
    return head, task
