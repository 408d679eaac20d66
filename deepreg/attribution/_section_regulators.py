"""Section 1 of the stage: regulator importance (DeepLIFT and gradient x input over all pairs)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepreg.attribution._section_context import Context, Section


@dataclasses.dataclass(frozen=True, kw_only=True)
class RegulatorSection(Section):
    sums: Any                     # `deeplift.RegulatorSums` of DeepLIFT
    gradient_sums: Any            # those of gradient x input, or None
    table: pd.DataFrame           # the ranked importance table (with truth roles and colours)


def section(ctx: Context, report) -> RegulatorSection:
    """Summary key `regulators`; tables regulator_importance.tsv, regulator_deeplift_per_gene_abs.npy and
    published_regulator_overlap.tsv; figures regulator_importance.png and regulator_methods.png."""
    from deepreg.attribution import deeplift, regulators
    from deepreg.attribution._progress import progress_bar

    config, dataset, truth = ctx.config, ctx.dataset, ctx.truth
    timings: dict[str, float] = {}
    started = time.perf_counter()
    ctx.say(f"regulator DeepLIFT for {len(ctx.genes) * dataset.n_conditions:,} pairs x {dataset.n_regulators} "
            "regulators ...")
    with progress_bar("regulator DeepLIFT", "gene") as progress:
        sums = deeplift.regulator_scores(ctx.model, ctx.sequences, ctx.inputs, reference=config.reference,
                                         reduce="abs_sum", background=ctx.background, gene_index=ctx.genes,
                                         progress=progress)
    timings["regulator_deeplift_s"] = time.perf_counter() - started
    gradient_sums = None
    if config.gradient_x_input:
        started = time.perf_counter()
        gradient_sums = deeplift.regulator_scores(ctx.model, ctx.sequences, ctx.inputs, rule="gradient",
                                                  reduce="abs_sum", background=ctx.background, gene_index=ctx.genes)
        timings["regulator_gradient_s"] = time.perf_counter() - started
    table = regulators.importance_table(dataset.regulators, dataset.regulator_symbols, sums, gradient_sums)
    if truth is not None:
        roles = dict(zip(truth.regulators["orf"], truth.regulators["role"]))
        table.insert(3, "truth_role", table["regulator"].map(roles).fillna(""))
        table["color"] = table["truth_role"].map({"master": "#cc3311", "minor": "#ee7733"}).fillna("#4477aa")
    table.drop(columns=["color"], errors="ignore").to_csv(ctx.tables / "regulator_importance.tsv", sep="\t",
                                                          index=False)
    regulators.plot_distribution(table, ctx.figures / "regulator_importance.png")
    regulators.plot_methods(table, ctx.figures / "regulator_methods.png")
    np.save(ctx.tables / "regulator_deeplift_per_gene_abs.npy", sums.per_gene_abs.astype(np.float32))
    summary = {"pairs": sums.pairs, "summation_to_delta_max_error": sums.delta_error,
               "skewness": regulators.skewness(table["deeplift_share"]),
               "top": table["symbol"].head(10).tolist(), "seconds": timings["regulator_deeplift_s"]}

    report.heading("1. Regulator importance")
    report.text(f"DeepLIFT (rescale rule) scores of the {dataset.n_regulators} regulator inputs for every one of "
                f"{sums.pairs:,} (gene, condition) pairs, with the promoter fixed and the regulator reference "
                f"'{config.reference}' ({'no change: log ratio 0' if config.reference == 'zero' else 'mean over conditions'}); "
                f"summed as |score| per regulator. Summation to delta holds to {sums.delta_error:.1e}. "
                f"Skewness of the shares: {summary['skewness']:.2f} (right-skewed: a few regulators dominate)."
                + (" Bars coloured by the simulation's truth: red planted masters, orange minor regulators, blue decoys."
                   if truth is not None else ""))
    report.figure(ctx.figures / "regulator_importance.png")
    shown = [c for c in ("rank", "symbol", "regulator", "truth_role", "deeplift_share", "deeplift_signed_mean",
                         "gradient_x_input_rank") if c in table]
    report.table(table[shown], max_rows=20, caption="ranked by the DeepLIFT sum of |score|")
    report.figure(ctx.figures / "regulator_methods.png", "DeepLIFT vs gradient x input per regulator")
    published = _published_overlap(table, report, ctx.tables)
    if published is not None:
        summary["published_overlap"] = published
    return RegulatorSection(summary={"regulators": summary}, timings=timings, sums=sums, gradient_sums=gradient_sums,
                      table=table)


def _published_overlap(table: pd.DataFrame, report, tables: Path) -> dict | None:
    """Top-10 overlap with the notebook's and Kundaje 2006's regulators, when the data has those genes."""
    from deepreg.attribution import regulators

    overlap = regulators.published_overlap(table)
    if not len(overlap) or overlap["among_regulators"].max() == 0:
        return None
    overlap.to_csv(tables / "published_regulator_overlap.tsv", sep="\t", index=False)
    report.text(f"Top 10 regulators against published rankings: the notebook's top 10 "
                f"({', '.join(regulators.NOTEBOOK_TOP10)}) and the top parents of Kundaje et al. 2006 "
                f"({', '.join(regulators.KUNDAJE_2006_TOP_PARENTS)}); overlap and hypergeometric p over the "
                f"{len(table)} regulators (names not among them are left out of the list).")
    report.table(overlap, caption="overlap of the top 10 with published regulators")
    either = overlap[(overlap["method"] == "deeplift") & (overlap["published"] == "either")].iloc[0]
    return {"top10_overlap_known": int(either["overlap"]), "top10_overlap_p": float(either["p_value"]),
            "rows": overlap.to_dict(orient="records")}
