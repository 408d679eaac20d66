"""Section 2 of the stage: the known-target check (Mann-Whitney per regulator; decoy-controlled per reference)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepreg.attribution._section_context import Context, Section
from deepreg.attribution._section_regulators import RegulatorSection
from deepreg.attribution.config import AttributionConfig
from deepreg.errors import DeepRegError


@dataclasses.dataclass(frozen=True, kw_only=True)
class KnownTargetSection(Section):
    target_sets: dict             # {regulator position: target gene positions} (--targets or the truth's)
    tests: pd.DataFrame | None    # the per-regulator Mann-Whitney tests, None without target sets
    references: dict              # {reference name: (label, target sets)} of the decoy-controlled test


def section(ctx: Context, report, regulators_section: RegulatorSection) -> KnownTargetSection:
    """Summary keys `targets` and `known_targets`; tables known_target_tests.tsv and
    known_target_decoy_tests.tsv; figure known_target_auroc.png."""
    from deepreg.attribution import regulators

    config, dataset = ctx.config, ctx.dataset
    sums, gradient_sums = regulators_section.sums, regulators_section.gradient_sums
    summary: dict = {}
    timings: dict[str, float] = {}
    target_sets = _targets(config, ctx.truth, dataset, ctx.genes)
    report.heading("2. Known-target check")
    if target_sets:
        tests = regulators.target_tests(sums.per_gene_abs, target_sets, dataset.regulators, dataset.regulator_symbols)
        if gradient_sums is not None:
            tests_g = regulators.target_tests(gradient_sums.per_gene_abs, target_sets, dataset.regulators,
                                              dataset.regulator_symbols, method="gradient_x_input")
            tests = pd.concat([tests, tests_g], ignore_index=True)
        tests.to_csv(ctx.tables / "known_target_tests.tsv", sep="\t", index=False)
        report.text("Per regulator with a target list: one-sided Mann-Whitney U test that its targets get larger "
                    "per-gene sums of |score| (over conditions) than the other genes; effect size P(target > other).")
        report.table(tests[tests["method"] == "deeplift"], max_rows=20, caption="DeepLIFT")
        summary["targets"] = {"regulators_tested": int((tests["method"] == "deeplift").sum()),
                              "significant_p_0.01": int(((tests["method"] == "deeplift") & (tests["p_value"] < 0.01)).sum())}
    else:
        tests = None
        report.text("No target list was given (--targets), and the data has no ground truth.")
    references = _reference_target_sets(config, dataset, ctx.genes, target_sets, ctx.truth)
    if references:
        started = time.perf_counter()
        summary["known_targets"] = _decoy_controlled(references, sums, gradient_sums, dataset, config, report,
                                                     ctx.tables, ctx.figures)
        timings["known_targets_s"] = time.perf_counter() - started
    return KnownTargetSection(summary=summary, timings=timings, target_sets=target_sets, tests=tests,
                              references=references)


def _targets(config: AttributionConfig, truth, dataset, genes) -> dict[int, np.ndarray]:
    from deepreg.attribution import regulators

    if config.targets:
        raw = regulators.read_targets(config.targets, regulator=config.targets_of)
    elif truth is not None and truth.targets_file.is_file():
        raw = regulators.read_targets(truth.targets_file)
    else:
        return {}
    resolved = regulators.resolve_targets(raw, dataset.regulators, dataset.regulator_symbols,
                                          [dataset.genes[g] for g in genes], [dataset.symbols[g] for g in genes])
    if config.targets and not resolved:
        raise DeepRegError(f"targets file {config.targets}: none of its regulators and genes are in the data")
    return resolved


def _reference_target_sets(config: AttributionConfig, dataset, genes, target_sets, truth) -> dict:
    """{reference name: (label, {regulator index: gene positions})}: the --known-targets tables, else the
    --targets file or the truth's targets (so simulated data gets the decoy-controlled test too)."""
    from deepreg.attribution import known_targets

    if config.known_targets:
        out = {}
        for reference in known_targets.load_references(config.known_targets):
            resolved = known_targets.resolve_reference(reference, dataset, genes)
            if not resolved:
                raise DeepRegError(f"known targets {reference.source}: none of its TFs is a regulator of the data "
                                   "with targets among its genes (TFs are matched by ORF id or gene symbol)")
            out[reference.name] = (reference.label, resolved)
        return out
    if target_sets:
        return {"targets" if config.targets else "truth": ("the given targets" if config.targets else
                                                           "the simulation's planted targets", target_sets)}
    return {}


def _decoy_controlled(references: dict, sums, gradient_sums, dataset, config: AttributionConfig, report, tables: Path,
                      figures: Path) -> dict:
    """The decoy-controlled test of every reference (`known_targets.py`), for DeepLIFT and gradient x input."""
    from deepreg.attribution import known_targets

    scores = {"deeplift": sums.per_gene_abs, "deeplift_share": known_targets.per_gene_share(sums.per_gene_abs)}
    if gradient_sums is not None:
        scores.update({"gradient_x_input": gradient_sums.per_gene_abs,
                       "gradient_x_input_share": known_targets.per_gene_share(gradient_sums.per_gene_abs)})
    ranks = {method: known_targets.column_ranks(per_gene) for method, per_gene in scores.items()}
    q = config.known_target_q
    results, frames, for_plot = {}, [], {}
    for name, (label, target_sets) in references.items():
        results[name] = {"label": label}
        for method, per_gene in scores.items():
            table, decoys = known_targets.decoy_target_tests(per_gene, target_sets, dataset.regulators,
                                                             dataset.regulator_symbols, reference=name, method=method,
                                                             ranks=ranks[method])
            frames.append(table)
            if method == "deeplift":
                for_plot[name] = (table, decoys)
            values = known_targets.summarise(table, q)
            for tf in ("MSN2", "MSN4"):
                line = known_targets.tf_line(table, tf)
                if line is not None:
                    values[tf.lower()] = line
            if method == "deeplift":
                results[name].update(values)
            else:
                results[name][{"deeplift_share": "per_gene_share"}.get(method, method)] = values
    every = pd.concat(frames, ignore_index=True)
    every.to_csv(tables / "known_target_decoy_tests.tsv", sep="\t", index=False)
    known_targets.plot_auroc_null(for_plot, figures / "known_target_auroc.png")
    report.heading("Decoy-controlled known-target test", level=3)
    report.text("Per TF with targets among the scored genes: the AUROC of its per-gene attribution (sum of "
                "|DeepLIFT| over conditions) for its known targets against the other genes, and the same AUROC "
                "for every other regulator on that target set (the decoys). Rank 1 = no regulator separates the "
                "targets better; p = (1 + decoys with AUROC >= the TF's) / (1 + decoys); q = Benjamini-Hochberg "
                "across the TFs of a reference. A Mann-Whitney test without decoys (mwu_p, the paper's test) "
                "passes for most regulators on any set of highly variable genes; this one can fail. The rows "
                "'deeplift_share' repeat the test on each gene's attribution shares (a regulator's part of the gene's "
                "total over regulators), which removes the gene-variability factor all regulators share.")
    summary_rows = [{"reference": name, "what": values["label"], "TFs tested": values["tfs_tested"],
                     "AUROC > 0.5": f"{values['tfs_auroc_above_half']} ({values['fraction_tfs_auroc_above_half']:.0%})",
                     f"q < {q:g}": f"{values[f'tfs_q_below_{q:g}']} ({values[f'fraction_tfs_q_below_{q:g}']:.0%})",
                     "median AUROC": values["median_auroc"], "median rank": values["median_rank"],
                     f"q < {q:g} (shares)": f"{values['per_gene_share'][f'tfs_q_below_{q:g}']} "
                                            f"({values['per_gene_share'][f'fraction_tfs_q_below_{q:g}']:.0%})"}
                    for name, values in results.items()]
    report.table(pd.DataFrame(summary_rows), caption="per reference (DeepLIFT)")
    for name, values in results.items():
        for tf in ("msn2", "msn4"):
            if tf in values:
                line = values[tf]
                report.text(f"{tf.upper()} ({name}): {line['targets']} targets, AUROC {line['auroc']:.3f}, rank "
                            f"{line['rank']} of {line['regulators']}; paper-style p (Mann-Whitney, no decoys) = "
                            f"{line['mwu_p']:.2g}; decoy-controlled p = {line['decoy_p']:.2g} (q {line['q_value']:.2g})"
                            + (f"; on attribution shares rank {values['per_gene_share'][tf]['rank']}, decoy p "
                               f"{values['per_gene_share'][tf]['decoy_p']:.2g}." if tf in values["per_gene_share"] else "."))
    report.figure(figures / "known_target_auroc.png", "AUROC of each TF on its own targets (red) against the "
                                                     "decoy regulators on the same targets (grey)")
    for method in ("deeplift", "deeplift_share"):
        report.table(every[every["method"] == method].head(30), max_rows=30, caption=f"TFs, best first ({method})")
    return results
