"""Section 3 of the stage: sequence attribution on the promoters of the most variable genes."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from deepreg.attribution._section_context import Context, Section, file_safe


@dataclasses.dataclass(frozen=True, kw_only=True)
class SequenceSection(Section):
    chosen: np.ndarray            # positions (among the scored genes) of the promoters attributed
    scores: Any                   # their DeepLIFT `deeplift.SequenceScores`, None when no gene was chosen


def section(ctx: Context, report, baseline: np.ndarray) -> SequenceSection:
    """Summary key `sequence`; table sequence_scores.npz; figures position_bias.png and sequence_GENE.png.

    `baseline`: the predictions of every scored pair (genes x conditions), which choose the genes."""
    from deepreg.attribution import deeplift, sequence

    config, sequences, genes = ctx.config, ctx.sequences, ctx.genes
    summary: dict = {}
    timings: dict[str, float] = {}
    variance = baseline.var(axis=1)
    chosen = np.argsort(-variance, kind="stable")[:config.sequence_genes]
    report.heading("3. Sequence attribution")
    seq_scores = seq_grad = None
    if len(chosen):
        started = time.perf_counter()
        ctx.say(f"sequence DeepLIFT for {len(chosen)} promoters x {config.shuffles} shuffled references ...")
        seq_scores = deeplift.sequence_scores(ctx.model, sequences[chosen], ctx.inputs, n_shuffles=config.shuffles,
                                              seed=config.seed, reduce="sum", background=ctx.background,
                                              gene_index=genes[chosen])
        timings["sequence_deeplift_s"] = time.perf_counter() - started
        started = time.perf_counter()
        seq_grad = deeplift.sequence_scores(ctx.model, sequences[chosen], ctx.inputs, rule="gradient", reduce="sum",
                                            background=ctx.background, gene_index=genes[chosen])
        timings["sequence_gradient_s"] = time.perf_counter() - started
        profiles = {"DeepLIFT (dinucleotide-shuffled references)": sequence.position_profile(seq_scores.scores),
                    "gradient x input": sequence.position_profile(seq_grad.scores)}
        sequence.plot_position_bias(profiles, ctx.figures / "position_bias.png")
        np.savez_compressed(ctx.tables / "sequence_scores.npz", genes=np.array(ctx.gene_ids)[chosen],
                            deeplift=seq_scores.scores, hypothetical=seq_scores.hypothetical,
                            gradient_x_input=seq_grad.scores)
        bias = {name: sequence.position_bias(profile) for name, profile in
                zip(("deeplift", "gradient_x_input"), profiles.values())}
        summary["sequence"] = {"genes": int(len(chosen)), "references": config.shuffles, "position_bias": bias}
        report.text(f"DeepLIFT on the promoters of the {len(chosen)} genes whose predictions vary most over conditions, "
                    f"with {config.shuffles} dinucleotide-shuffled references per promoter, summed over the "
                    f"{ctx.dataset.n_conditions} conditions; and gradient x input. The per-position mean over genes exposes "
                    "systematic position bias (the notebook saw systematic +/- patches).")
        report.figure(ctx.figures / "position_bias.png")
        plot_names = list(config.plot_genes) or [ctx.named(chosen[i]) for i in
                                                 np.argsort(-np.abs(seq_scores.scores).sum(axis=(1, 2)))[:3]]
        lookup = {name.upper(): i for i, g in enumerate(chosen) for name in (ctx.gene_ids[g], ctx.gene_symbols[g])
                  if name}
        for name in plot_names:
            row = lookup.get(name.upper())
            if row is None:
                continue
            path = ctx.figures / f"sequence_{file_safe(name)}.png"
            sequence.plot_gene(seq_scores.scores[row], sequences[chosen[row]],
                               f"{name}: DeepLIFT summed over conditions", path, gradient=seq_grad.scores[row])
            report.figure(path)
    return SequenceSection(summary=summary, timings=timings, chosen=chosen, scores=seq_scores)
