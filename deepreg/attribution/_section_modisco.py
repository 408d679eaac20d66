"""Section 4 of the stage, continued: TF-MoDISco on the sequence DeepLIFT scores, matched like the filters."""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import pandas as pd

from deepreg.attribution._section_context import Context, Section
from deepreg.attribution._section_sequence import SequenceSection

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModiscoSection(Section):
    comparisons: pd.DataFrame | None = None   # every pattern x known motif comparison; None without patterns


def section(ctx: Context, report, sequence_section: SequenceSection, known: dict) -> ModiscoSection:
    """Summary key `modisco`; motifs/modisco.meme; table modisco_matches.tsv; figure modisco_logos.png.

    Runs when asked for (`modisco`, `modisco_genes`) and the sequence section scored promoters."""
    config, scores, chosen = ctx.config, sequence_section.scores, sequence_section.chosen
    if not (config.modisco and config.modisco_genes and scores is not None):
        return ModiscoSection()
    from deepreg.attribution import modisco, motifs

    ctx.say("TF-MoDISco ...")
    started = time.perf_counter()
    use = np.arange(min(config.modisco_genes, len(chosen)))
    try:
        found = modisco.run_modisco(ctx.sequences[chosen][use], scores.hypothetical[use],
                                    n_leiden_runs=config.modisco_leiden_runs)
    except Exception as error:  # modisco raises on too few seqlets
        log.warning("TF-MoDISco found no motifs: %s", error)
        found = []
    timings = {"modisco_s": time.perf_counter() - started}
    report.heading("TF-MoDISco motifs", level=3)
    if not found:
        report.text("TF-MoDISco found no patterns (too few significant seqlets).")
        return ModiscoSection(summary={"modisco": {"patterns": 0, "matched": 0}}, timings=timings)
    pwms = {m.name: m.pwm for m in found}
    motifs.write_meme(ctx.motifs / "modisco.meme", pwms, sites={m.name: m.seqlets for m in found})
    comparisons = motifs.tomtom(pwms, known)
    best = motifs.best_matches(comparisons, config.q_threshold)
    best.insert(1, "seqlets", best["query"].map({m.name: m.seqlets for m in found}))
    best.insert(2, "consensus", best["query"].map(lambda q: motifs.consensus(pwms[q])))
    best.to_csv(ctx.tables / "modisco_matches.tsv", sep="\t", index=False)
    motifs.plot_matches(pwms, best, known, ctx.figures / "modisco_logos.png")
    summary = {"patterns": len(found), "matched": int(best["matched"].sum())}
    report.text(f"TF-MoDISco (modisco-lite) on the DeepLIFT hypothetical contributions of {len(use)} promoters: "
                f"{len(found)} patterns, {summary['matched']} match a known motif at q < {config.q_threshold}.")
    report.table(best[["query", "seqlets", "consensus", "target", "p_value", "q_value"]], max_rows=15)
    report.figure(ctx.figures / "modisco_logos.png")
    return ModiscoSection(summary={"modisco": summary}, timings=timings, comparisons=comparisons)
