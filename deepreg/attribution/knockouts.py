"""In-silico knock-outs: change the model or its inputs, score again, compare.

Every function takes `func(model, sequences, regulators, **kwargs) -> G x C` (default
`predict.predict`), tangermeme's contract: the effect of a knock-out on predictions or on any other
per-(gene, condition) score is the same call with a different `func`. Extra keyword arguments go to
`func`: for `predict`, `gene_index` / `condition_index` (the dataset rows of the promoters and
regulator vectors given, read by models with gene and condition inputs).

- filter knock-out (the notebook's filter 164, MIG1-like): zero a first-layer filter's weights and
  bias; the genes whose predictions move most are tested for enrichment in a target list (Fisher);
- TF knock-out (the paper's MSN2/4 experiment): every site of the TF's motif (a consensus such as
  AGGGG and its reverse complement, or a PWM scan) replaced by N and the TF's expression lowered
  32-fold (its log2-ratio input minus 5); predicted change per gene and condition, targets against
  other genes per condition group, and the Spearman correlation with a measured knock-out profile.
  `CachedKnockouts` computes the same on predictions without running the sequence tower again for
  promoters a knock-out leaves as they are, in the conditions it needs only (what the stage uses).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools

import numpy as np
import pandas as pd

from deepreg.attribution.predict import FeaturePredictor, predict
from deepreg.attribution.stats import benjamini_hochberg, fisher_enrichment, mann_whitney_greater, spearman
from deepreg.errors import DeepRegError


# --------------------------------------------------------------------------------------------------
# Filter knock-outs
# --------------------------------------------------------------------------------------------------
def _first_conv_layer(model):
    tower = None
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.name == "sequence_tower":
            tower = layer
    layers = tower.layers if tower is not None else model.layers
    for layer in layers:
        if type(layer).__name__ in ("SequenceConv", "Conv1D"):
            return layer
    raise DeepRegError(f"filter knock-out: model '{model.name}' has no first conv layer")


@contextlib.contextmanager
def filters_removed(model, filters):
    """Temporarily zero the weights and bias of first-layer filters (restored on exit)."""
    layer = _first_conv_layer(model)
    original = [w.copy() for w in layer.get_weights()]
    kernel = original[0].copy()
    n_filters = kernel.shape[-1]
    filters = np.atleast_1d(np.asarray(filters, int))
    if filters.size and (filters.min() < 0 or filters.max() >= n_filters):
        raise DeepRegError(f"filter knock-out: filters must be in 0..{n_filters - 1}, got {filters.tolist()}")
    kernel[:, :, filters] = 0.0
    weights = [kernel]
    if len(original) > 1:
        bias = original[1].copy()
        bias[filters] = 0.0
        weights.append(bias)
    layer.set_weights(weights)
    try:
        yield model
    finally:
        layer.set_weights(original)


def filter_knockout(model, sequences, regulators, filters, *, func=predict, baseline=None, **kwargs) -> np.ndarray:
    """Change of `func` (G x C) when the given first-layer filters are zeroed."""
    baseline = func(model, sequences, regulators, **kwargs) if baseline is None else baseline
    with filters_removed(model, filters):
        changed = func(model, sequences, regulators, **kwargs)
    return changed - baseline


def top_genes(change: np.ndarray, n: int = 50) -> np.ndarray:
    """Genes whose scores move most (mean |change| over conditions), largest first."""
    movement = np.abs(change).mean(axis=1)
    return np.argsort(-movement, kind="stable")[:n]


def filter_knockout_table(model, sequences, regulators, filters: dict[int, np.ndarray | None], *, genes, symbols,
                          func=predict, n_top: int = 50, labels: dict[int, str] | None = None, baseline=None,
                          **kwargs) -> pd.DataFrame:
    """Knock out each filter in turn: top moved genes and a Fisher test against its target list.

    filters: {filter index: gene indices of the target list to test (or None)}.
    """
    baseline = func(model, sequences, regulators, **kwargs) if baseline is None else baseline
    rows = []
    for filter_index, members in filters.items():
        change = filter_knockout(model, sequences, regulators, [filter_index], func=func, baseline=baseline, **kwargs)
        moved = top_genes(change, n_top)
        row = {"filter": f"filter_{filter_index}", "label": (labels or {}).get(filter_index, ""),
               "mean_abs_change": float(np.abs(change).mean()),
               "top_genes": ", ".join(symbols[g] or genes[g] for g in moved[:10])}
        if members is not None and len(members):
            test = fisher_enrichment(moved, members, len(genes))
            row.update({"targets": test["members"], "targets_in_top": test["overlap"],
                        "expected_in_top": test["expected_overlap"], "odds_ratio": test["odds_ratio"],
                        "fisher_p": test["p_value"]})
        rows.append(row)
    table = pd.DataFrame(rows)
    if "fisher_p" in table:
        table["fisher_q"] = benjamini_hochberg(table["fisher_p"].to_numpy())
    return table


# --------------------------------------------------------------------------------------------------
# TF knock-outs
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TFKnockout:
    """Predicted effect of knocking out one TF (G x C changes) and how its sites were found."""

    regulator: str
    change: np.ndarray            # sites removed and expression lowered
    change_sites: np.ndarray | None       # sites removed only (cis; None: not computed)
    change_expression: np.ndarray | None  # expression lowered only (trans; None: not computed)
    site_mask: np.ndarray         # G x L positions set to N
    genes_with_sites: int
    log2_fold: float


def mask_sites(sequences: np.ndarray, mask: np.ndarray, background=None) -> np.ndarray:
    """Promoters with the masked positions replaced by N (all-zero rows, or `background` frequencies)."""
    out = np.asarray(sequences, np.float32).copy()
    out[mask] = 0.0 if background is None else np.asarray(background, np.float32)
    return out


def tf_knockout(model, sequences, regulators, regulator_index, site_mask: np.ndarray, *, fold: float = 32.0,
                func=predict, baseline=None, background=None, name: str = "", **kwargs) -> TFKnockout:
    """Remove a TF's sites (mask G x L -> N) and lower its expression `fold`-fold (log2 input - log2 fold).

    `regulator_index`: one regulator position, or several (a double deletion such as msn2/4).
    `regulators` holds only the conditions to predict (with `condition_index` for models that read it).
    """
    if fold <= 0:
        raise DeepRegError(f"TF knock-out: the expression factor must be positive, got {fold}")
    from deepreg.data.encoding import as_model_input

    sequences = np.asarray(sequences)
    promoters = as_model_input(sequences, background)
    masked = mask_sites(promoters, site_mask, background)
    lowered = np.asarray(regulators, np.float32).copy()
    lowered[:, regulator_index] -= np.log2(fold)
    baseline = func(model, promoters, regulators, **kwargs) if baseline is None else baseline
    both = func(model, masked, lowered, **kwargs) - baseline
    cis = func(model, masked, regulators, **kwargs) - baseline
    trans = func(model, promoters, lowered, **kwargs) - baseline
    return TFKnockout(regulator=name, change=both, change_sites=cis, change_expression=trans, site_mask=site_mask,
                      genes_with_sites=int(site_mask.any(axis=1).sum()), log2_fold=float(np.log2(fold)))


class CachedKnockouts:
    """TF knock-outs on cached sequence features, predicted only in the conditions they need.

    `tf_knockout` calls `func` on the whole matrix three times (both changes, cis only, trans only),
    each running the sequence tower on every promoter. Here (scores = `predict`'s predictions) the
    tower runs once for all promoters (on first use, shared by every knock-out of a run), again only
    for the promoters whose sites a knock-out masks, and each knock-out is predicted only in the
    conditions given (`regulators` holds those, `condition_index` their dataset columns): the rest
    of the model reads the cached features (`predict.FeaturePredictor`).
    """

    def __init__(self, model, sequences, *, background=None, gene_index=None):
        self.model = model
        self.sequences = np.asarray(sequences)
        self.background = background
        self.gene_index = gene_index

    @functools.cached_property
    def predictor(self) -> FeaturePredictor:
        return FeaturePredictor(self.model)

    @functools.cached_property
    def promoters(self) -> np.ndarray:
        from deepreg.data.encoding import as_model_input

        return as_model_input(self.sequences, self.background)

    @functools.cached_property
    def features(self) -> np.ndarray:
        """The sequence tower's output for every promoter, unperturbed."""
        return self.predictor.features(self.promoters)

    def masked_features(self, site_mask: np.ndarray) -> np.ndarray:
        """Tower features with the masked positions set to N: the tower runs on the genes with sites only."""
        features = self.features.copy()
        rows = np.flatnonzero(np.asarray(site_mask).any(axis=1))
        if len(rows):
            masked = mask_sites(self.promoters[rows], site_mask[rows], self.background)
            features[rows] = self.predictor.features(masked)
        return features

    def _predict(self, features, regulators, condition_index):
        return self.predictor.predict(features, regulators, gene_index=self.gene_index,
                                      condition_index=condition_index)

    def knockout(self, regulators, regulator_index, site_mask: np.ndarray, *, fold: float = 32.0,
                 condition_index=None, name: str = "", separate: bool = True) -> TFKnockout:
        """As `tf_knockout`, for the conditions in `regulators`; `separate=False` leaves out the cis-only
        and trans-only changes (None), which need two more passes of the model after the tower."""
        if fold <= 0:
            raise DeepRegError(f"TF knock-out: the expression factor must be positive, got {fold}")
        regulators = np.asarray(regulators, np.float32)
        lowered = regulators.copy()
        lowered[:, regulator_index] -= np.log2(fold)
        masked = self.masked_features(site_mask)
        baseline = self._predict(self.features, regulators, condition_index)
        both = self._predict(masked, lowered, condition_index) - baseline
        cis = self._predict(masked, regulators, condition_index) - baseline if separate else None
        trans = self._predict(self.features, lowered, condition_index) - baseline if separate else None
        return TFKnockout(regulator=name, change=both, change_sites=cis, change_expression=trans,
                          site_mask=site_mask, genes_with_sites=int(np.asarray(site_mask).any(axis=1).sum()),
                          log2_fold=float(np.log2(fold)))


def targets_vs_others(change: np.ndarray, targets: np.ndarray, groups: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Per condition group: are the targets' |predicted changes| larger than other genes'? (one-sided MWU)."""
    groups = groups or {"all conditions": np.arange(change.shape[1])}
    inside = np.zeros(change.shape[0], bool)
    inside[np.asarray(targets, int)] = True
    rows = []
    for group, columns in groups.items():
        if len(columns) == 0:
            continue
        movement = np.abs(change[:, columns]).mean(axis=1)
        test = mann_whitney_greater(movement[inside], movement[~inside])
        rows.append({"condition_group": group, "conditions": int(len(columns)), "targets": int(inside.sum()),
                     "mean_abs_change_targets": test["mean_in"], "mean_abs_change_others": test["mean_out"],
                     "ratio": test["mean_in"] / test["mean_out"] if test["mean_out"] else float("nan"),
                     "effect_size": test["effect_size"], "p_value": test["p_value"]})
    return pd.DataFrame(rows)


def compare_measured(change: np.ndarray, measured: np.ndarray, columns=None) -> dict:
    """Spearman correlation of predicted and measured change (per gene: mean over `columns`; or G x C)."""
    measured = np.asarray(measured, float)
    predicted = change if columns is None else change[:, columns]
    if measured.ndim == 1:
        predicted = predicted.mean(axis=1)
    return spearman(predicted, measured)


def read_measured_profile(path, genes, symbols) -> np.ndarray:
    """A measured knock-out profile: a table with a gene column and one value column -> G values (NaN if absent)."""
    from deepreg.attribution.regulators import name_index

    frame = pd.read_csv(path, sep=None, engine="python")
    if frame.shape[1] < 2:
        raise DeepRegError(f"measured profile {path}: expected a gene column and a value column")
    at = name_index(genes, symbols)
    values = np.full(len(genes), np.nan)
    for gene, value in zip(frame.iloc[:, 0].astype(str), pd.to_numeric(frame.iloc[:, -1], errors="coerce")):
        position = at.get(gene.upper())
        if position is not None:
            values[position] = value
    if np.isfinite(values).sum() < 3:
        raise DeepRegError(f"measured profile {path}: fewer than 3 of its genes are in the dataset")
    return values


def plot_tf_knockout(result: TFKnockout, targets: np.ndarray, groups: dict[str, np.ndarray], path) -> None:
    """Mean |predicted change| of targets and other genes per condition group (bars)."""
    from deepreg._plotting import pyplot

    plt = pyplot()
    inside = np.zeros(result.change.shape[0], bool)
    inside[np.asarray(targets, int)] = True
    names = list(groups)
    target_means = [np.abs(result.change[inside][:, groups[g]]).mean() for g in names]
    other_means = [np.abs(result.change[~inside][:, groups[g]]).mean() for g in names]
    fig, axis = plt.subplots(figsize=(max(4.5, 1.1 * len(names) + 2), 3.4))
    positions = np.arange(len(names))
    axis.bar(positions - 0.2, target_means, 0.4, label=f"targets ({inside.sum()})", color="#cc6677")
    axis.bar(positions + 0.2, other_means, 0.4, label="other genes", color="#88aadd")
    axis.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
    axis.set_ylabel("mean |predicted change|")
    axis.set_title(f"{result.regulator} knock-out: sites -> N, expression / {2 ** result.log2_fold:g}", fontsize=9)
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
