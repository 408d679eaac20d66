"""Section 4 of the stage: first-layer filter PWMs matched to known motifs with TomTom."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pandas as pd

from deepreg.attribution._section_context import Context, Section


@dataclasses.dataclass(frozen=True, kw_only=True)
class MotifSection(Section):
    known: dict                   # {"ID NAME": PWM} of the known motifs (--motifs)
    filters: Any                  # `motifs.FilterMotifs` of the first layer
    best: pd.DataFrame            # the best match of each active filter
    comparisons: pd.DataFrame     # every filter x known motif comparison


def section(ctx: Context, report) -> MotifSection:
    """Summary key `motifs`; motifs/filters.meme and filters_untrimmed.meme; tables filter_matches.tsv and
    filter_tomtom_all.tsv; figure filter_logos.png."""
    from deepreg.attribution import motifs

    config = ctx.config
    ctx.say("filter PWMs and TomTom ...")
    started = time.perf_counter()
    known, known_label = motifs.known_motifs(config.known_motifs)
    filters = motifs.filter_pwms(ctx.model, ctx.sequences, n_top=config.top_subsequences, background=ctx.background)
    motifs.write_meme(ctx.motifs / "filters.meme", filters.pwms, sites=filters.sites)
    motifs.write_meme(ctx.motifs / "filters_untrimmed.meme", filters.untrimmed, sites=filters.sites)
    comparisons = motifs.tomtom(filters.pwms, known)
    best = motifs.best_matches(comparisons, config.q_threshold)
    best.insert(1, "consensus", best["query"].map(lambda q: motifs.consensus(filters.pwms[q])))
    best.to_csv(ctx.tables / "filter_matches.tsv", sep="\t", index=False)
    comparisons[comparisons["q_value"] < 0.5].to_csv(ctx.tables / "filter_tomtom_all.tsv", sep="\t", index=False)
    motifs.plot_matches(filters.pwms, best, known, ctx.figures / "filter_logos.png")
    timings = {"motifs_s": time.perf_counter() - started}
    n_matched = int(best["matched"].sum())
    summary = {"filters": len(filters.pwms) + len(filters.inactive), "filters_active": len(filters.pwms),
               "filters_matched": n_matched, "known_motifs": len(known), **motifs.matched_counts(best)}
    report.heading("4. Motifs from first-layer filters")
    report.text(f"For each of the {len(filters.pwms)} active first-layer filters ({len(filters.inactive)} others "
                f"never activate), the PWM of its {config.top_subsequences} "
                f"most activating promoter subsequences (flanks under 0.25 bits trimmed), matched with TomTom "
                f"(memelite) against {len(known)} {known_label} motifs; q-values are Benjamini-Hochberg over all "
                f"{len(filters.pwms)} x {len(known)} filter x motif comparisons (not within each filter). "
                f"{n_matched} filters match a known motif at q < {config.q_threshold}; "
                f"{summary['matched_q0.1']} at q < 0.1 "
                f"({', '.join(summary['matched_tfs_q0.1'][:40]) or 'none'}) and "
                f"{summary['matched_q0.05']} at q < 0.05. All PWMs are in motifs/filters.meme.")
    report.table(best[["query", "consensus", "target", "p_value", "q_value", "strand", "significant_targets"]],
                 max_rows=20, caption="best match of each filter")
    report.figure(ctx.figures / "filter_logos.png", "matched filters (left) and their best known motif (right)")
    return MotifSection(summary={"motifs": summary}, timings=timings, known=known, filters=filters, best=best,
                        comparisons=comparisons)
