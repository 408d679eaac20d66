"""Section 7 of the stage: what part of the predictions comes through per-gene / per-condition lookup terms."""

from __future__ import annotations

import time

import numpy as np

from deepreg.attribution._section_context import Context, Section


def section(ctx: Context, report, baseline: np.ndarray) -> Section:
    """Summary key `lookup_terms` (when the model has such terms); table lookup_terms.tsv.

    `baseline`: the predictions of every scored pair, which the terms' shares are of."""
    from deepreg.attribution.gene_terms import lookup_term_shares

    started = time.perf_counter()
    shares = lookup_term_shares(ctx.model, ctx.sequences, ctx.inputs, baseline=baseline, background=ctx.background,
                                gene_index=ctx.genes)
    if not len(shares):
        return Section(timings={"lookup_terms_s": time.perf_counter() - started})
    shares.to_csv(ctx.tables / "lookup_terms.tsv", sep="\t", index=False)
    report.heading("7. Per-gene and per-condition lookup terms (not regulation)")
    report.text("Parts of the prediction read from the gene's or condition's row (an embedding, a baseline "
                "table), not from the promoter or the regulators. DeepLIFT scores give them nothing (they are the "
                "same at the input and the reference), so they are not counted as regulation; their share of the "
                "prediction variance over all pairs, var(f - f without the term) / var(f), is what the regulator "
                "and sequence scores cannot explain.")
    report.table(shares)
    terms = {row.term.split(" (")[0].replace(" ", "_"): {"variance_share": row.variance_share,
                                                          "mean_abs_part": row.mean_abs_part}
             for row in shares.itertuples()}
    return Section(summary={"lookup_terms": terms}, timings={"lookup_terms_s": time.perf_counter() - started})
