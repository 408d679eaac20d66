"""Section 5 of the stage: in-silico knock-outs of filters and TFs, and the automatic TF knock-outs."""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from typing import Any

import numpy as np
import pandas as pd

from deepreg.attribution._section_context import Context, Section, file_safe, site_mask
from deepreg.attribution._section_known_targets import KnownTargetSection
from deepreg.attribution._section_motifs import MotifSection
from deepreg.attribution.config import AttributionConfig
from deepreg.errors import DeepRegError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class KnockoutSection(Section):
    cached: Any                   # `knockouts.CachedKnockouts` of the scored genes
    regulator_at: dict            # {regulator id or symbol, upper case: regulator position}
    tf_summary: dict              # {TF name: ratio, p_value, genes_with_sites[, spearman_measured]}


def section(ctx: Context, report, baseline: np.ndarray, motif_section: MotifSection,
            known_target_section: KnownTargetSection) -> KnockoutSection:
    """Summary key `knockouts` (`filters`, `tfs`, `auto`); tables filter_knockouts.tsv, tf_knockouts.tsv and
    tf_knockouts_auto.tsv; figures tf_knockout_TF.png."""
    from deepreg.attribution import auto_knockouts, knockouts, regulators
    from deepreg.attribution._progress import progress_bar

    config, dataset, sequences, inputs = ctx.config, ctx.dataset, ctx.sequences, ctx.inputs
    best, filters, known = motif_section.best, motif_section.filters, motif_section.known
    target_sets = known_target_section.target_sets
    timings: dict[str, float] = {}
    ctx.say("in-silico knock-outs ...")
    started = time.perf_counter()
    report.heading("5. In-silico knock-outs")
    regulator_at = regulators.name_index(dataset.regulators, dataset.regulator_symbols)
    order = best.sort_values("p_value", kind="stable")["query"].head(config.knockout_filters)
    chosen_filters = {}
    labels = {}
    for name in order:
        index = filters.filter_index[name]
        match = best[best["query"] == name].iloc[0]
        labels[index] = f"{match['target']} (q {match['q_value']:.2g})"
        position = regulator_at.get(str(match["target_name"]).upper())
        chosen_filters[index] = target_sets.get(position) if position is not None else None
    filter_table = knockouts.filter_knockout_table(ctx.model, sequences, inputs, chosen_filters, genes=ctx.gene_ids,
                                                   symbols=ctx.gene_symbols, n_top=config.knockout_top_genes,
                                                   labels=labels, baseline=baseline, background=ctx.background,
                                                   gene_index=ctx.genes)
    filter_table.to_csv(ctx.tables / "filter_knockouts.tsv", sep="\t", index=False)
    timings["filter_knockouts_s"] = time.perf_counter() - started
    started = time.perf_counter()
    cached = knockouts.CachedKnockouts(ctx.model, sequences, background=ctx.background, gene_index=ctx.genes)
    report.text(f"Filter knock-out: the weights and bias of a filter set to zero; the {config.knockout_top_genes} genes "
                "whose predictions move most (mean |change| over conditions) are tested for enrichment in the targets "
                "of the filter's matched TF (one-sided Fisher exact test), when that TF is a regulator with targets.")
    report.table(filter_table, max_rows=config.knockout_filters)

    groups = _condition_groups(config, ctx.truth, dataset)
    tf_rows, tf_summary = [], {}
    for spec in _tf_knockout_specs(config, ctx.truth, dataset):
        name, motif = spec
        position = regulator_at.get(name.upper())
        if position is None:
            log.warning("TF knock-out %s: not a regulator of the data", name)
            continue
        mask = site_mask(sequences, motif, known)
        result = cached.knockout(inputs, position, mask, fold=config.fold, name=name)
        members = target_sets.get(position)
        if members is None or not len(members):
            members = np.flatnonzero(mask.any(axis=1))  # without a target list: genes with sites
        per_group = knockouts.targets_vs_others(result.change, members, {"all conditions": np.arange(dataset.n_conditions),
                                                                         **groups})
        per_group.insert(0, "regulator", name)
        per_group.insert(1, "motif", motif)
        per_group["genes_with_sites"] = result.genes_with_sites
        tf_rows.append(per_group)
        knockouts.plot_tf_knockout(result, members, groups or {"all": np.arange(dataset.n_conditions)},
                                   ctx.figures / f"tf_knockout_{file_safe(name)}.png")
        overall = per_group.iloc[0]
        tf_summary[name] = {"ratio": float(overall["ratio"]), "p_value": float(overall["p_value"]),
                            "genes_with_sites": result.genes_with_sites}
        if config.measured and config.measured.split("=", 1)[0].upper() == name.upper():
            measured = knockouts.read_measured_profile(config.measured.split("=", 1)[1], ctx.gene_ids,
                                                       ctx.gene_symbols)
            tf_summary[name]["spearman_measured"] = knockouts.compare_measured(result.change, measured)["rho"]
    timings["tf_knockouts_s"] = time.perf_counter() - started
    if tf_rows:
        tf_table = pd.concat(tf_rows, ignore_index=True)
        tf_table.to_csv(ctx.tables / "tf_knockouts.tsv", sep="\t", index=False)
        report.text(f"TF knock-out: every site of the motif (and its reverse complement) replaced by N and the TF's "
                    f"expression lowered {config.fold:g}-fold (log2 input - {np.log2(config.fold):.0f}); mean |predicted "
                    "change| of its targets vs the other genes, per condition group (one-sided Mann-Whitney U).")
        report.table(tf_table, max_rows=60)
        for name in tf_summary:
            report.figure(ctx.figures / f"tf_knockout_{file_safe(name)}.png")
            if "spearman_measured" in tf_summary[name]:
                report.text(f"{name}: Spearman correlation of predicted and measured change "
                            f"{tf_summary[name]['spearman_measured']:.3f}.")
    else:
        report.text("No TF knock-out requested (--knockout NAME[=MOTIF]) and no ground truth to choose planted TFs.")
    summary = {"filters": len(filter_table), "tfs": tf_summary}
    started = time.perf_counter()
    with progress_bar("automatic TF knock-outs", "TF") as progress:
        automatic = auto_knockouts.section(cached, inputs, known_target_section.references, dataset, config, known,
                                           report, ctx.tables, progress=progress)
    timings["auto_knockouts_s"] = time.perf_counter() - started
    if automatic:
        summary["auto"] = automatic
    return KnockoutSection(summary={"knockouts": summary}, timings=timings, cached=cached, regulator_at=regulator_at,
                           tf_summary=tf_summary)


def condition_groups_from_file(path, conditions) -> dict[str, np.ndarray]:
    frame = pd.read_csv(path, sep=None, engine="python")
    if frame.shape[1] < 2:
        raise DeepRegError(f"condition groups {path}: expected columns condition and group")
    group_of = dict(zip(frame.iloc[:, 0].astype(str).str.strip(), frame.iloc[:, 1].astype(str)))
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(conditions):
        groups.setdefault(group_of.get(str(name).strip(), "other"), []).append(index)
    return {key: np.array(value) for key, value in groups.items()}


KEYWORD_GROUPS = (("heat shock", r"heat|hs\b|37|\bto 3[0-9]"), ("oxidative", r"h2o2|menadione|diamide|dtt|oxid"),
                  ("nitrogen", r"nitrogen|amino acid"), ("diauxic", r"diauxic|glucose|stationary|ypd.*day"),
                  ("osmotic", r"sorbitol|nacl|osmo"), ("steady growth", r"steady|ypd|growth|carbon|ethanol|galactose"))


def keyword_condition_groups(conditions) -> dict[str, np.ndarray]:
    """Condition groups from names (Gasch-style): heat shock, oxidative, nitrogen, ..., other."""
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(conditions):
        text = str(name).lower()
        group = next((label for label, pattern in KEYWORD_GROUPS if re.search(pattern, text)), "other")
        groups.setdefault(group, []).append(index)
    return {key: np.array(value) for key, value in groups.items()}


def _condition_groups(config: AttributionConfig, truth, dataset) -> dict[str, np.ndarray]:
    """The condition groups of the TF knock-outs: --condition-groups, else the truth's programs, else keywords."""
    if config.condition_groups:
        return condition_groups_from_file(config.condition_groups, dataset.conditions)
    if truth is not None:
        groups = truth.condition_groups(dataset.conditions)
        if groups:
            return groups
    return keyword_condition_groups(dataset.conditions)


def _tf_knockout_specs(config: AttributionConfig, truth, dataset) -> list[tuple[str, str]]:
    """(regulator name, motif) pairs: from --knockout NAME[=CONSENSUS|JASPAR_ID], else the planted masters."""
    from deepreg.attribution import auto_knockouts

    specs = []
    for item in config.tf_knockouts:
        if item.strip().lower() == auto_knockouts.AUTO:
            continue
        name, _, motif = item.partition("=")
        if not motif and truth is not None:
            row = truth.regulators[(truth.regulators["symbol"].str.upper() == name.upper()) |
                                   (truth.regulators["orf"].str.upper() == name.upper())]
            motif = row["motif_consensus"].iloc[0] if len(row) and row["motif_consensus"].iloc[0] else ""
        specs.append((name, motif or name))
    if not specs and truth is not None:
        masters = truth.regulators[truth.regulators["role"] == "master"]
        specs = [(row["symbol"], row["motif_consensus"]) for _, row in masters.iterrows() if row["motif_consensus"]]
    return specs
