"""The head of the stage's report: the truth checks and the headline figures, from the run summary."""

from __future__ import annotations

from deepreg.attribution.config import AttributionConfig
from deepreg.attribution.report import Report


def part(summary: dict, config: AttributionConfig) -> Report:
    """What goes under the report's "Summary" heading, written once every section has run."""
    out = Report("")
    if summary.get("checks"):
        out.checks(summary["checks"])
    top = ", ".join(summary["regulators"]["top"])
    motifs = summary["motifs"]
    modisco = (f" TF-MoDISco patterns matched: {summary['modisco']['matched']} of {summary['modisco']['patterns']}."
               if "modisco" in summary else "")
    out.text(f"Top regulators (DeepLIFT): {top}. Filters matched to known motifs: {motifs['filters_matched']} of "
             f"{motifs['filters_active']} active." + modisco)
    held_out = summary["held_out_conditions"]
    out.text(f"Conditions held out of training (data.exclude_conditions): {len(held_out)}"
             + (f" ({'; '.join(held_out)})." if held_out else "."))
    for name, values in summary.get("known_targets", {}).items():
        out.text(f"Known targets ({name}): {values['tfs_tested']} TFs tested, "
                 f"{values['fraction_tfs_auroc_above_half']:.0%} with AUROC > 0.5 and "
                 f"{values[f'fraction_tfs_q_below_{config.known_target_q:g}']:.0%} with decoy-controlled "
                 f"q < {config.known_target_q:g}.")
    return out
