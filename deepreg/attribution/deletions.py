"""In-silico knock-outs against the deletions measured in the compendium.

The Gasch et al. 2000 compendium holds deletion strains under the same stress as their wild type
(numbered 1-173 as in the original condition list): msn2/msn4 deletion + 37 C heat (136, 137;
wild type DBY7286, 135), the same + 0.3 mM H2O2 (141, 142; wild type 140), yap1 deletion + heat
(138, 139) and + H2O2 (143, 144); 145-147 are Msn2, Msn4 and Yap1 overexpression. Each array is
the strain's stress response (log2 ratio against its own unstressed cells), so deletion minus wild
type is what the deletion changes in the response: the measured knock-out effect per gene.

The in-silico knock-out is predicted in the wild-type condition only (its regulator vector): the
TFs' inputs lowered `fold` times (log2 ratio - log2 fold; the data are log2 ratios) and, in one
variant, their sites (a consensus and its reverse complement) masked to N in every promoter, as the
notebook did with MSN2/4 and STRE (AGGGG). Conditions are found by name, never by position.
For an honest test the deletion and overexpression arrays are held out of training
(`data.exclude_conditions`); each comparison says whether its arrays were.
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import pandas as pd

from deepreg.attribution.stats import spearman
from deepreg.errors import DeepRegError


@dataclasses.dataclass(frozen=True)
class MeasuredDeletion:
    """A measured deletion: the TFs removed, their site, and the mutant and wild-type arrays (by name)."""

    key: str
    label: str
    tfs: tuple[str, ...]
    motif: str
    mutant: str        # regular expression searched in the condition names
    wild_type: str
    numbers: tuple[int, ...] = ()  # wild type, then mutants: 1-based positions in the Gasch compendium


GASCH_WILD_TYPE_HEAT = r"^DBY7286\b.*37 ?deg"
GASCH_WILD_TYPE_H2O2 = r"^DBY7286\b.*H2O2"
STRE = "AGGGG"
YAP1_SITE = "TTASTAA"  # the YAP1 response element TTA(C/G)TAA
GASCH_DELETIONS = (
    MeasuredDeletion("msn24_heat", "msn2/4 deletion, 37 C heat", ("MSN2", "MSN4"), STRE, r"^DBYmsn2.*37 ?deg",
                     GASCH_WILD_TYPE_HEAT, (135, 136, 137)),
    MeasuredDeletion("msn24_h2o2", "msn2/4 deletion, H2O2", ("MSN2", "MSN4"), STRE, r"^DBYmsn2.*H2O2",
                     GASCH_WILD_TYPE_H2O2, (140, 141, 142)),
    MeasuredDeletion("yap1_heat", "yap1 deletion, 37 C heat", ("YAP1",), YAP1_SITE, r"^DBYyap1.*37 ?deg",
                     GASCH_WILD_TYPE_HEAT, (135, 138, 139)),
    MeasuredDeletion("yap1_h2o2", "yap1 deletion, H2O2", ("YAP1",), YAP1_SITE, r"^DBYyap1.*H2O2",
                     GASCH_WILD_TYPE_H2O2, (140, 143, 144)),
)
GASCH_PERTURBATIONS = (r"^DBYmsn2", r"^DBYyap1", r"overexpression")  # data.exclude_conditions for an honest test


def conditions_matching(conditions, pattern: str) -> np.ndarray:
    """Indices of the condition names in which `pattern` (a regular expression) is found."""
    regex = re.compile(pattern)
    return np.array([i for i, name in enumerate(conditions) if regex.search(str(name))], dtype=int)


def measured_effect(expression: np.ndarray, mutant: np.ndarray, wild_type: int) -> np.ndarray:
    """Per gene: mean over the mutant arrays minus the wild-type array (NaN where nothing was measured)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # genes with no mutant value: NaN, as documented
        return np.nanmean(expression[:, mutant], axis=1) - expression[:, wild_type]


def top_moving(measured: np.ndarray, n: int) -> np.ndarray:
    """The n genes whose measured change is largest in absolute value (finite values only)."""
    finite = np.flatnonzero(np.isfinite(measured))
    return finite[np.argsort(-np.abs(measured[finite]), kind="stable")[:n]]


def compare(predicted: np.ndarray, measured: np.ndarray, n_top: int) -> dict:
    """Spearman of predicted and measured change over all genes and over the top-moving genes."""
    every = spearman(predicted, measured)
    top = top_moving(measured, n_top)
    over_top = spearman(predicted[top], measured[top])
    return {"spearman": every["rho"], "spearman_p": every["p_value"], "genes": every["n"],
            "spearman_top": over_top["rho"], "spearman_top_p": over_top["p_value"], "top_genes": over_top["n"]}


def deletion_checks(cached, inputs, expression, conditions, regulator_at: dict[str, int], *, fold: float,
                    site_mask, deletions=GASCH_DELETIONS, held_out=(), n_top: int = 200) -> pd.DataFrame:
    """For each measured deletion present in the data: the knock-out predicted in the wild-type condition,
    with and without site masking, against deletion minus wild type (Spearman over genes and top movers).

    cached: a `knockouts.CachedKnockouts` of the scored promoters (the sequence tower runs once for
    them, then only on the promoters with sites of each deletion's motif); inputs: the regulator
    inputs of every condition (C x R); site_mask(motif) -> G x L mask of the sites to remove;
    regulator_at maps upper-case names to regulator positions; held_out are the condition indices
    kept out of training.
    """
    rows = []
    held_out = set(int(i) for i in held_out)
    for deletion in deletions:
        mutant = conditions_matching(conditions, deletion.mutant)
        wild = conditions_matching(conditions, deletion.wild_type)
        positions = [regulator_at[tf.upper()] for tf in deletion.tfs if tf.upper() in regulator_at]
        if not len(mutant) or len(wild) != 1 or not positions:
            continue
        if wild[0] in set(mutant):
            raise DeepRegError(f"measured deletion {deletion.key}: the wild-type pattern {deletion.wild_type!r} "
                               f"matches a mutant array ({conditions[wild[0]]!r})")
        measured = measured_effect(expression, mutant, int(wild[0]))
        mask = site_mask(deletion.motif)
        result = cached.knockout(inputs[wild], positions, mask, fold=fold, condition_index=wild, name=deletion.key)
        base = {"deletion": deletion.key, "label": deletion.label,
                "tfs": ", ".join(tf for tf in deletion.tfs if tf.upper() in regulator_at),
                "wild_type": str(conditions[wild[0]]), "mutants": " | ".join(str(conditions[i]) for i in mutant),
                "condition_numbers": " ".join(str(i + 1) for i in [int(wild[0]), *mutant.tolist()]),
                "numbers_as_in_gasch2000": not deletion.numbers or tuple(i + 1 for i in [int(wild[0]), *mutant.tolist()])
                == deletion.numbers,
                "mutants_held_out": all(int(i) in held_out for i in mutant)}
        for variant, change in (("sites masked + expression lowered", result.change),
                                ("expression lowered only", result.change_expression)):
            rows.append({**base, "variant": variant, "motif": deletion.motif if "masked" in variant else "",
                         "genes_with_sites": result.genes_with_sites if "masked" in variant else 0,
                         **compare(change[:, 0], measured, n_top)})
    return pd.DataFrame(rows)
