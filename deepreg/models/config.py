"""The model half of a run's configuration: one frozen config picks a point of the architecture space.

The space (every architecture of the 2017 notebook is a point of it, see `configs/models/`):

- sequence module: 0-3 conv layers (filters, width, padding, batch-norm, a max-pool after each layer
  with a factor and stride, or a global max over positions), reverse-complement handling, an optional
  recurrent layer over the positions left, optional dense layers;
- regulator module: the raw regulator vector, or dense layers;
- fusion: `tensor` (outer product into the first head layer), `concat` (concatenation into the first
  head layer) or `concat_rnn` (each position's sequence features concatenated with the regulator
  features and read by the recurrent layer);
- head: dense layers with dropout, then a linear output (regression) or a 3-class softmax.

Checks that need only the config run when it is built (`__post_init__`); checks that need the
promoter length (pool factors, filter widths against positions) run in `ModelConfig.validate_for`,
which `build_models` calls. Every message names the clashing keys.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from deepreg._config import Config
from deepreg.errors import DeepRegError

PER_POSITION_FUSIONS = ("concat_rnn",)
# Fusions whose first head layer is not the fusion itself: every head entry is a layer after it.
HEADLESS_FUSIONS = ("concat_rnn", "bilinear")
OFFSETS = ("none", "best", "additive", "low_rank_completion", "trans_ridge", "cis_kmer_ridge",
           "cis_kmer_proximal_ridge")


def _check_rate(key: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise DeepRegError(f"{key}: expected a dropout rate in [0, 1), got {value}")


def _check_units(key: str, values: tuple[int, ...]) -> None:
    if any(units < 1 for units in values):
        raise DeepRegError(f"{key}: expected positive layer widths, got {list(values)}")


@dataclasses.dataclass(frozen=True)
class SequenceConfig(Config):
    """The promoter (cis) tower. Per-layer values may be one value for every layer.

    `pool` per conv layer: `none`, `global` (max over all positions) or a max-pool factor; the pool's
    stride is `pool_stride` (0: the factor itself, non-overlapping windows). `reverse_complement`:
    `none`; `augment` (each promoter is reverse-complemented with probability 1/2 while training);
    `mirrored` (every filter is scanned on both strands through a mirrored copy of its weights: the
    conv layers are reverse-complement equivariant, and the two strands are merged by a max at the
    end of the conv stack, so `filters` counts distinct filters). `recurrent` (`lstm`, `gru`) reads
    the positions left after the conv stack; with the `concat_rnn` fusion it reads them together
    with the regulator features instead. `dense_units` are dense layers at the end of the tower.
    `kmer` (a length k, 0: off) adds the promoter's k-mer counts (reverse complements merged; the
    6-mer ridge baseline's features, standardised across genes) to the tower's features, before its
    dense layers; with `conv_layers: 0` the tower is a k-mer tower alone. `kmer_proximal` adds the
    counts within each given distance (bases) of the ORF start: position-aware features.
    `feature_norm` standardises each output feature of the tower across genes (batch-norm): max-pooled
    motif scores differ little from gene to gene next to their mean, so without it the fused features
    are dominated by the regulators alone and genes are hard to tell apart early in training.
    """

    tower: str = "conv"
    conv_layers: int = 1
    filters: tuple[int, ...] = (256,)
    filter_width: tuple[int, ...] = (19,)
    padding: Literal["valid", "same"] = "valid"
    activation: str = "relu"
    batch_norm: bool = False
    pool: tuple[str, ...] = ("global",)
    pool_stride: tuple[int, ...] = (0,)
    dropout: float = 0.0
    reverse_complement: Literal["none", "augment", "mirrored"] = "none"
    recurrent: Literal["none", "lstm", "gru"] = "none"
    recurrent_units: int = 128
    dense_units: tuple[int, ...] = ()
    feature_norm: bool = False
    kmer: int = 0
    kmer_proximal: tuple[int, ...] = ()

    def per_layer(self, name: str) -> tuple:
        """The value of a per-layer field for each conv layer (a single value is broadcast)."""
        values = getattr(self, name)
        if len(values) == 1:
            return tuple(values) * self.conv_layers
        return tuple(values)

    def pool_windows(self) -> tuple[tuple[str | int, int], ...]:
        """(pool, stride) per conv layer: ('none', 0), ('global', 0) or (factor, stride)."""
        windows = []
        for pool, stride in zip(self.per_layer("pool"), self.per_layer("pool_stride")):
            if pool in ("none", "global"):
                windows.append((pool, 0))
            else:
                windows.append((int(pool), stride or int(pool)))
        return tuple(windows)

    def __post_init__(self) -> None:
        if not 0 <= self.conv_layers <= 3:
            raise DeepRegError(f"model.sequence.conv_layers: expected 0 to 3 layers, got {self.conv_layers}")
        for name in ("filters", "filter_width", "pool", "pool_stride"):
            values = getattr(self, name)
            if self.conv_layers and len(values) not in (1, self.conv_layers):
                expected = "1 value" if self.conv_layers == 1 else f"1 value or {self.conv_layers}"
                raise DeepRegError(f"model.sequence.{name}: {len(values)} values clash with "
                                   f"model.sequence.conv_layers = {self.conv_layers} (give {expected})")
        _check_units("model.sequence.filters", self.filters)
        _check_units("model.sequence.filter_width", self.filter_width)
        _check_units("model.sequence.dense_units", self.dense_units)
        if any(stride < 0 for stride in self.pool_stride):
            raise DeepRegError(f"model.sequence.pool_stride: expected strides >= 0 (0: the pool factor), "
                               f"got {list(self.pool_stride)}")
        for pool in self.pool:
            if pool not in ("none", "global") and not (pool.isdigit() and int(pool) > 0):
                raise DeepRegError(f"model.sequence.pool: {pool!r} is not 'none', 'global' or a positive pool factor")
        _check_rate("model.sequence.dropout", self.dropout)
        if not 0 <= self.kmer <= 8:
            raise DeepRegError(f"model.sequence.kmer: expected a k-mer length from 1 to 8 (0: no k-mer counts), "
                               f"got {self.kmer}")
        if self.kmer_proximal and not self.kmer:
            raise DeepRegError("model.sequence.kmer_proximal needs model.sequence.kmer > 0 (the k-mer length)")
        _check_units("model.sequence.kmer_proximal", self.kmer_proximal)
        if self.kmer and self.recurrent != "none":
            raise DeepRegError(f"model.sequence.kmer = {self.kmer} clashes with model.sequence.recurrent = "
                               f"{self.recurrent}: k-mer counts have no positions for a recurrent layer")
        if self.recurrent_units < 1:
            raise DeepRegError(f"model.sequence.recurrent_units: expected at least 1 unit, got {self.recurrent_units}")
        self._check_positions_kept()
        if self.reverse_complement == "mirrored" and self.conv_layers == 0:
            raise DeepRegError("model.sequence.reverse_complement = mirrored clashes with "
                               "model.sequence.conv_layers = 0: there are no filters to mirror")

    def _check_positions_kept(self) -> None:
        """A global max leaves no positions: nothing positional may follow it."""
        pools = self.per_layer("pool") if self.conv_layers else ()
        for index, pool in enumerate(pools[:-1], start=1):
            if pool == "global":
                raise DeepRegError(f"model.sequence.pool: layer {index} is 'global', which leaves no positions for "
                                   f"conv layer {index + 1} (model.sequence.conv_layers = {self.conv_layers})")
        if self.recurrent != "none" and pools and pools[-1] == "global":
            raise DeepRegError(f"model.sequence.recurrent = {self.recurrent} clashes with model.sequence.pool = "
                               f"{list(self.pool)}: a global max-pool leaves no positions for the recurrent layer")


@dataclasses.dataclass(frozen=True)
class RegulatorConfig(Config):
    """The regulator (trans) tower: the raw regulator vector (no layers) or dense layers.

    `layer_norm` normalises each dense layer's output; `skip` passes the raw regulator vector on
    beside the dense layers' output (a linear path next to the nonlinear one).
    """

    dense_units: tuple[int, ...] = ()
    activation: str = "relu"
    dropout: float = 0.0
    layer_norm: bool = False
    skip: bool = False

    def __post_init__(self) -> None:
        _check_units("model.regulators.dense_units", self.dense_units)
        _check_rate("model.regulators.dropout", self.dropout)


@dataclasses.dataclass(frozen=True)
class HeadConfig(Config):
    """Dense layers after fusion, each preceded by dropout, then the output layer.

    With the `tensor` and `concat` fusions the first entry is the fusion layer itself (it reads the
    fused sequence and regulator features); with `concat_rnn` the recurrent layer is the fusion and
    every entry is a dense layer after it; with `bilinear` every entry is a dense layer on the score
    and the rank-d interaction features u * v (none: the output reads the score alone).
    """

    dense_units: tuple[int, ...] = (512, 512)
    activation: str = "relu"
    dropout: float = 0.5

    def __post_init__(self) -> None:
        _check_units("model.head.dense_units", self.dense_units)
        _check_rate("model.head.dropout", self.dropout)


@dataclasses.dataclass(frozen=True)
class ProfileConfig(Config):
    """A gene tower that reads the gene's own training-pair expression (`ExpressionProfile`; off when
    `dense_units` is empty).

    The gene's row of training values (and which of them are present) goes through dense layers to a
    vector h_g, and the prediction gains h_g . w_c + b_c: a masked autoencoder of the gene's profile
    (AutoRec on the genes x conditions matrix) beside the towers. A training pair never sees itself:
    the training pairs are cut into `folds` groups at random and a pair of group k is predicted from
    the profile without group k; validation and test pairs, never in any profile, see every training
    pair. During training `mask_rate` of the remaining entries are hidden as well (augmentation).
    `decoder: conditions` learns w_c, b_c per condition (every test condition has training pairs:
    random pairs); `decoder: regulators` maps the regulator tower's features of the condition to them;
    `decoder: regulator_profiles` folds the condition in from its regulators' values, each weighted
    by the regulator's own encoded profile (held-out conditions: a column whose regulator entries are
    observed). Test genes must have training pairs: refused on the genes splits.
    """

    dense_units: tuple[int, ...] = ()
    activation: str = "gelu"
    dropout: float = 0.2
    mask_rate: float = 0.25
    folds: int = 5
    decoder: Literal["conditions", "regulators", "regulator_profiles"] = "conditions"

    def __post_init__(self) -> None:
        _check_units("model.profile.dense_units", self.dense_units)
        _check_rate("model.profile.dropout", self.dropout)
        _check_rate("model.profile.mask_rate", self.mask_rate)
        if self.folds < 2:
            raise DeepRegError(f"model.profile.folds: expected at least 2 groups of training pairs, got {self.folds}")

    @property
    def enabled(self) -> bool:
        return bool(self.dense_units)


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    """One point of the architecture space.

    `fusion` names a registered fusion (see the module docstring). `implementation` picks the
    factorised block computation (default: towers once per gene and per condition, fusion contracted
    without materialising anything per pair) or the naive per-pair reference that materialises the
    fused vector; both have the same parameters and outputs. `contraction` orders the tensor-product
    contraction in blocks (`auto`: the cheaper one for the block's shape). `l1` and `l2` act on every
    kernel (conv, dense, fusion, recurrent). `precision: mixed_bfloat16` computes the products in
    bfloat16 with float32 weights and outputs (about 1.7x faster on CPUs with AVX512-BF16, and on
    GPUs): faster, but no longer the float32 reference function.
    """

    name: str = "single-layer-tensor"
    task: Literal["regression", "classification"] = "regression"
    sequence: SequenceConfig = SequenceConfig()
    regulators: RegulatorConfig = RegulatorConfig()
    fusion: str = "tensor"
    head: HeadConfig = HeadConfig()
    rank: int = 64
    gene_embedding: bool = False
    condition_embedding: bool = False
    offset: str = "none"
    profile: ProfileConfig = ProfileConfig()
    l1: float = 0.0
    l2: float = 0.0
    implementation: Literal["factorised", "naive"] = "factorised"
    contraction: Literal["auto", "per_gene", "per_condition"] = "auto"
    precision: Literal["float32", "mixed_bfloat16"] = "float32"

    def __post_init__(self) -> None:
        if self.l1 < 0 or self.l2 < 0:
            raise DeepRegError(f"model.l1 / model.l2: expected strengths >= 0, got {self.l1} and {self.l2}")
        _check_fusion_name(self.fusion)
        if self.rank < 1:
            raise DeepRegError(f"model.rank: expected a positive rank, got {self.rank}")
        if self.offset not in OFFSETS:
            raise DeepRegError(f"model.offset: unknown baseline {self.offset!r} (one of: {', '.join(OFFSETS)})")
        if self.offset != "none" and self.task != "regression" and (self.fusion != "bilinear" or self.head.dense_units):
            raise DeepRegError(f"model.offset = {self.offset} clashes with model.task = {self.task}: a 3-class model "
                               "reads the baseline's log2 ratio through the bilinear score (model.fusion: bilinear, "
                               "model.head.dense_units: [])")
        for key in ("gene_embedding", "condition_embedding"):
            if getattr(self, key) and self.fusion != "bilinear":
                raise DeepRegError(f"model.{key} = true clashes with model.fusion = {self.fusion}: the "
                                   "embedding is part of the bilinear fusion")
        if self.profile.enabled and (self.fusion != "bilinear"
                                     or (self.task == "classification" and self.head.dense_units)):
            raise DeepRegError(f"model.profile.dense_units = {list(self.profile.dense_units)} clashes with "
                               f"model.fusion = {self.fusion} / model.task = {self.task} / model.head.dense_units "
                               f"= {list(self.head.dense_units)}: the expression-profile tower adds a term to the "
                               "bilinear score, which a 3-class output reads directly (fusion: bilinear; for "
                               "task: classification, head.dense_units: [])")
        if self.reads_positions:
            self._check_per_position_fusion()
        elif not self.head.dense_units and self.fusion not in HEADLESS_FUSIONS:
            raise DeepRegError(f"model.head.dense_units = [] clashes with model.fusion = {self.fusion}: its first "
                               "entry is the fusion layer, at least one is needed")

    @property
    def uses_gene_index(self) -> bool:
        """Whether the model reads each gene's row index (an embedding, a baseline table or the profiles)."""
        return self.gene_embedding or self.condition_embedding or self.offset != "none" or self.profile.enabled

    @property
    def uses_condition_index(self) -> bool:
        """Models that read gene indices read condition indices too (one indexed-input contract)."""
        return self.uses_gene_index

    @property
    def reads_positions(self) -> bool:
        """Whether the fusion reads the sequence features position by position."""
        return self.fusion in PER_POSITION_FUSIONS

    def _check_per_position_fusion(self) -> None:
        sequence = self.sequence
        if sequence.recurrent == "none":
            raise DeepRegError(f"model.fusion = {self.fusion} clashes with model.sequence.recurrent = none: "
                               "the per-position concatenation is read by a recurrent layer (lstm or gru)")
        if sequence.dense_units:
            raise DeepRegError(f"model.fusion = {self.fusion} clashes with model.sequence.dense_units = "
                               f"{list(sequence.dense_units)}: the fusion needs per-position sequence features")
        if sequence.feature_norm:
            raise DeepRegError(f"model.fusion = {self.fusion} clashes with model.sequence.feature_norm = true: the "
                               "fusion reads per-position features (use model.sequence.batch_norm instead)")

    @property
    def n_outputs(self) -> int:
        return 1 if self.task == "regression" else 3

    def validate_for(self, sequence_length: int) -> None:
        """Refuse what cannot be built on promoters of `sequence_length` bases, naming the clashing keys."""
        left = sequence_length
        spec = self.sequence
        if any(width > sequence_length for width in spec.kmer_proximal):
            raise DeepRegError(f"model.sequence.kmer_proximal = {list(spec.kmer_proximal)} clashes with "
                               f"data.sequence_length = {sequence_length}: a window cannot be longer than the promoter")
        for index, (width, (pool, stride)) in enumerate(
                zip(spec.per_layer("filter_width"), spec.pool_windows()), start=1):
            if spec.padding == "valid" and width > left:
                raise DeepRegError(
                    f"model.sequence.filter_width = {width} (layer {index}) clashes with "
                    f"{_length_source(index, sequence_length)}: only {left} positions are left for a valid conv")
            left = left - width + 1 if spec.padding == "valid" else left
            if pool == "global":
                left = 0
            elif pool != "none":
                if pool > left:
                    raise DeepRegError(
                        f"model.sequence.pool = {pool} (layer {index}) clashes with "
                        f"{_length_source(index, sequence_length)}: only {left} positions are left after conv layer "
                        f"{index}")
                left = (left - pool) // stride + 1
        needs_positions = spec.recurrent != "none" or self.reads_positions
        if needs_positions and left < 1:
            raise DeepRegError(f"model.sequence.recurrent = {spec.recurrent} clashes with model.sequence.pool = "
                               f"{list(spec.pool)}: no positions are left for the recurrent layer")


def _check_fusion_name(name: str) -> None:
    """Refuse an unregistered fusion when the config is read, not when the model is built."""
    from deepreg.models import build  # noqa: F401  (registers the fusions)
    from deepreg.models.registry import FUSIONS, lookup

    lookup(FUSIONS, "fusion", "model.fusion", name)


def _length_source(index: int, sequence_length: int) -> str:
    where = "data.sequence_length"
    if index > 1:
        where += " and the conv layers / pools before it (model.sequence.filter_width, model.sequence.pool)"
    return f"{where} = {sequence_length}" if index == 1 else f"{where} (data.sequence_length = {sequence_length})"
