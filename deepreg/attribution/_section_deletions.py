"""Section 5 of the stage, continued: knock-outs against the deletion arrays measured in the compendium."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from deepreg.attribution._section_context import Context, Section, site_mask
from deepreg.attribution._section_knockouts import KnockoutSection


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeletionSection(Section):
    measured_deletions: dict = dataclasses.field(default_factory=dict)  # the `knockouts.measured_deletions` entry


def section(ctx: Context, report, knockout_section: KnockoutSection, known: dict) -> DeletionSection:
    """Entry `measured_deletions` of the `knockouts` summary; table measured_deletion_knockouts.tsv.

    Runs with `measured_deletions` (on by default) and says nothing when the data has no deletion arrays
    (Gasch 2000's, `deletions.py`)."""
    if not ctx.config.measured_deletions:
        return DeletionSection()
    from deepreg.attribution import deletions
    from deepreg.data.splits import excluded_conditions

    config, dataset, data_config = ctx.config, ctx.dataset, ctx.data_config
    started = time.perf_counter()
    held_out = (excluded_conditions(dataset.conditions, data_config.exclude_conditions)
                if data_config.exclude_conditions else [])
    table = deletions.deletion_checks(knockout_section.cached, ctx.inputs, dataset.expression[ctx.genes],
                                      dataset.conditions, knockout_section.regulator_at, fold=config.fold,
                                      site_mask=lambda motif: site_mask(ctx.sequences, motif, known),
                                      held_out=held_out, n_top=config.deletion_top_genes)
    if not len(table):
        return DeletionSection(timings={"measured_deletions_s": time.perf_counter() - started})
    table.to_csv(ctx.tables / "measured_deletion_knockouts.tsv", sep="\t", index=False)
    report.heading("Knock-outs against measured deletions", level=3)
    all_held = bool(table["mutants_held_out"].all())
    report.text(f"In-silico knock-out predicted in the wild-type array only: the TFs' regulator inputs lowered "
                f"{config.fold:g}-fold (log2 ratio - {np.log2(config.fold):.0f}; the data are log2 ratios) and, in one "
                "variant, their sites (consensus and reverse complement) masked to N in every promoter; compared with "
                "the measured deletion minus wild type (mean over the deletion arrays): Spearman over all genes and "
                f"over the {config.deletion_top_genes} genes whose measured change is largest. "
                + ("The deletion arrays were held out of training (data.exclude_conditions)." if all_held else
                   "Warning: some deletion arrays were used in training (see mutants_held_out): set "
                   "data.exclude_conditions to hold them out for an honest test."))
    report.table(table[["deletion", "variant", "tfs", "motif", "condition_numbers", "mutants_held_out", "genes",
                        "spearman", "spearman_p", "top_genes", "spearman_top", "genes_with_sites"]], max_rows=20)
    out = {}
    for row in table.itertuples():
        key = row.deletion + ("" if row.variant.startswith("sites") else "_no_masking")
        out[key] = {"spearman": row.spearman, "spearman_top": row.spearman_top, "genes": row.genes,
                    "mutants_held_out": bool(row.mutants_held_out)}
    return DeletionSection(timings={"measured_deletions_s": time.perf_counter() - started}, measured_deletions=out)
