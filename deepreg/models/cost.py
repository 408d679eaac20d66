"""Multiply-adds of one training step, counted from a built model: the arithmetic floor of a run.

A step on a block of G_b genes x C_b conditions runs the sequence tower on G_b promoters, the
regulator tower on C_b vectors and the fusion and head on G_b x C_b pairs; the naive step runs
everything once per pair. Forward multiply-adds are counted exactly for the layers that do
arithmetic (convolutions, dense, fusion and recurrent layers); normalisation, pooling, activations,
dropout, the in-model k-mer counts (`GeneKmerCounts`), the gene-embedding lookup and the baseline
table (`BaselineOffset`) are memory-bound and counted as zero. The backward pass is counted per
layer: twice the forward (gradients of the weights and of the inputs), once when the input is data
(no trained layer before it: the first conv layer, the first regulator layer, no input gradient),
and one window per filter for a fused global max conv. The expression-profile tower
(`ExpressionProfile`) encodes each gene's row once per fold and once in full (folds + 1 rows per gene
in a block, one per pair in the naive form) and decodes one product per pair and encoding read.
"""

from __future__ import annotations

import dataclasses

from deepreg.models import layers as deepreg_layers
from deepreg.models.bilinear import BilinearFusion, ExpressionProfile


@dataclasses.dataclass
class StepCost:
    """Multiply-adds of one step, split by part of the network."""

    forward: dict[str, float] = dataclasses.field(default_factory=dict)
    backward: dict[str, float] = dataclasses.field(default_factory=dict)

    def add(self, part: str, forward: float, backward: float) -> None:
        self.forward[part] = self.forward.get(part, 0.0) + forward
        self.backward[part] = self.backward.get(part, 0.0) + backward

    @property
    def total(self) -> float:
        return sum(self.forward.values()) + sum(self.backward.values())

    def parts(self) -> dict[str, float]:
        return {part: self.forward[part] + self.backward[part] for part in self.forward}


def _conv_cost(layer: deepreg_layers.SequenceConv, is_first: bool) -> tuple[float, float]:
    length, channels = layer.input.shape[1], layer.input.shape[-1]
    positions = length - layer.kernel_size + 1 if layer.padding == "valid" else length
    window = layer.kernel_size * channels
    forward = positions * window * layer.channels_out
    if layer.pool == "global":
        return forward, window * layer.channels_out * (1 if is_first else 2)
    return forward, forward * (1 if is_first else 2)


def _recurrent_cost(layer) -> tuple[float, float]:
    positions, width = layer.input.shape[1], layer.input.shape[-1]
    gates = (4 if type(layer).__name__ == "LSTM" else 3) * layer.units
    forward = positions * (width + layer.units) * gates
    return forward, 2 * forward


def tower_cost(tower) -> tuple[float, float]:
    """Forward and backward multiply-adds of a tower per input row (promoter or regulator vector)."""
    forward = backward = 0.0
    first = True
    for layer in tower.layers:
        if isinstance(layer, deepreg_layers.SequenceConv):
            f, b = _conv_cost(layer, first)
        elif type(layer).__name__ == "Dense":
            f = layer.input.shape[-1] * layer.units
            b = f * (1 if first else 2)
        elif type(layer).__name__ in ("LSTM", "GRU"):
            f, b = _recurrent_cost(layer)
        else:
            # a trained memory-bound layer (the batch-norm after the k-mer counts) needs the gradient
            # of its output: the arithmetic layer after it no longer reads data
            first = first and not layer.trainable_weights
            continue
        first = False
        forward, backward = forward + f, backward + b
    return forward, backward


def _head_cost(model) -> float:
    """Forward multiply-adds per pair of the dense layers after the fusion."""
    return sum(layer.input.shape[-1] * layer.units for layer in model.layers
               if type(layer).__name__ == "Dense")


def _fusion_layer(model):
    return next(layer for layer in model.layers if layer.name == "fusion")


def _bilinear_cost(fusion: BilinearFusion, gene_rows: int, condition_rows: int, pairs: int,
                   regulators_trained: bool, pairwise: bool) -> tuple[float, float]:
    """Forward and backward multiply-adds of the bilinear fusion.

    Projections once per gene row (s P and s p: a (d + 1)) and per condition row (t Q and t q:
    b (d + 1)), then d per pair for u . v. A block computes the interaction features u * v (d per
    pair) besides its G_b x d by d x C_b product; the pair form sums the same product, so it has them
    for free. Backward: the weight and input gradients of the projections (no input gradient for raw
    regulators) and the gradients of u and v through each per-pair product.
    """
    gene_projection = gene_rows * fusion.sequence_width * (fusion.rank + 1)
    condition_projection = condition_rows * fusion.regulator_width * (fusion.rank + 1)
    products = 2 if fusion.interaction and not pairwise else 1
    per_pair = pairs * fusion.rank * products
    forward = gene_projection + condition_projection + per_pair
    backward = 2 * gene_projection + (2 if regulators_trained else 1) * condition_projection + 2 * per_pair
    return forward, backward


def block_step_cost(model, n_genes: int, n_conditions: int) -> StepCost:
    """Multiply-adds of one training step of the block model on a G_b x C_b block."""
    cost = StepCost()
    sequence_f, sequence_b = tower_cost(model.get_layer("sequence_tower"))
    cost.add("sequence tower", n_genes * sequence_f, n_genes * sequence_b)
    regulator_f, regulator_b = tower_cost(model.get_layer("regulator_tower"))
    cost.add("regulator tower", n_conditions * regulator_f, n_conditions * regulator_b)
    regulators_trained = regulator_f > 0
    fusion = _fusion_layer(model)
    pairs = n_genes * n_conditions
    if isinstance(fusion, deepreg_layers.TensorProductDense):
        width_f, width_r, units = fusion.sequence_width, fusion.regulator_width, fusion.units
        order = fusion.contraction if fusion.contraction != "auto" else fusion.cheaper(n_genes, n_conditions)
        if order == "per_condition":
            once, per_pair = n_conditions * width_r * width_f * units, pairs * width_f * units
        else:
            once, per_pair = n_genes * width_f * width_r * units, pairs * width_r * units
        # kernel gradient (once) and the intermediate's gradient (per pair); the input gradient of the
        # modality contracted second (per pair) and of the first one (once, skipped when it is raw data)
        backward = once + 2 * per_pair + (once if order == "per_gene" or regulators_trained else 0)
        cost.add("fusion", once + per_pair, backward)
    elif isinstance(fusion, deepreg_layers.ConcatDense):
        forward = (n_genes * fusion.sequence_width + n_conditions * fusion.regulator_width) * fusion.units
        cost.add("fusion", forward, 2 * forward)
    elif isinstance(fusion, BilinearFusion):
        cost.add("fusion", *_bilinear_cost(fusion, n_genes, n_conditions, pairs, regulators_trained, pairwise=False))
    else:
        positions = fusion.input[0].shape[1]
        projections = (n_genes * positions * fusion.sequence_width + n_conditions * fusion.regulator_width)
        forward = projections * fusion.gates + pairs * positions * fusion.units * fusion.gates
        cost.add("fusion", forward, 2 * forward)
    head = _head_cost(model)
    cost.add("head", pairs * head, 2 * pairs * head)
    encodings = _profile_folds(model) + 1  # one per hidden group and the full row
    _add_profile_cost(cost, model, encodings * n_genes, encodings * pairs)
    return cost


def _profile_layer(model):
    found = [layer for layer in model.layers if isinstance(layer, ExpressionProfile)]
    return found[0] if found else None


def _profile_folds(model) -> int:
    profile = _profile_layer(model)
    return profile.folds if profile is not None else 0


def _add_profile_cost(cost: StepCost, model, encoded_rows: int, decoded: int) -> None:
    """The profile tower's dense encoder on `encoded_rows` rows and its decoder's `decoded` products."""
    profile = _profile_layer(model)
    if profile is None:
        return
    if profile.decoder == "regulator_profiles":
        encoded_rows += int(profile.regulator_rows.shape[0])  # the regulators' own rows, every step
    widths = [2 * profile.n_conditions, *profile.dense_units]
    encoder = sum(a * b for a, b in zip(widths, widths[1:]))
    first = widths[0] * widths[1]
    cost.add("profile tower", encoded_rows * encoder + decoded * widths[-1],
             encoded_rows * (2 * encoder - first) + 2 * decoded * widths[-1])


def _pair_fusion_forward(fusion, n_pairs: int) -> float:
    """Forward multiply-adds of a fusion that materialises the fused vector of each pair."""
    if isinstance(fusion, deepreg_layers.ConcatRecurrent):
        positions = fusion.input[0].shape[1]
        width = fusion.sequence_width + fusion.regulator_width
        return n_pairs * positions * (width + fusion.units) * fusion.gates
    return n_pairs * int(fusion.kernel.shape[0]) * fusion.units


def pair_step_cost(model, n_pairs: int) -> StepCost:
    """Multiply-adds of one training step of the naive pair model on `n_pairs` pairs."""
    cost = StepCost()
    sequence_f, sequence_b = tower_cost(model.get_layer("sequence_tower"))
    cost.add("sequence tower", n_pairs * sequence_f, n_pairs * sequence_b)
    regulator_f, regulator_b = tower_cost(model.get_layer("regulator_tower"))
    cost.add("regulator tower", n_pairs * regulator_f, n_pairs * regulator_b)
    fusion = _fusion_layer(model)
    if isinstance(fusion, BilinearFusion):
        cost.add("fusion", *_bilinear_cost(fusion, n_pairs, n_pairs, n_pairs, regulator_f > 0, pairwise=True))
    else:
        forward = _pair_fusion_forward(fusion, n_pairs)
        cost.add("fusion", forward, 2 * forward)
    head = _head_cost(model)
    cost.add("head", n_pairs * head, 2 * n_pairs * head)
    _add_profile_cost(cost, model, n_pairs, n_pairs)
    return cost
