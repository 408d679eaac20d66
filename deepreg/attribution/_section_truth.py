"""Section 6 of the stage: checks against the ground truth of simulated data (`truth.py`)."""

from __future__ import annotations

import pandas as pd

from deepreg.attribution._section_context import Context, Section


def section(ctx: Context, report, table: pd.DataFrame, comparisons: pd.DataFrame,
            modisco_comparisons: pd.DataFrame | None, tests: pd.DataFrame | None, tf_summary: dict) -> Section:
    """Summary keys `truth` and `checks` (pass / fail rows); tables truth_motifs_filters.tsv and
    truth_motifs_modisco.tsv. Nothing without a truth folder.

    `table`: the regulator importance table; `comparisons`, `modisco_comparisons`: TomTom of the filters
    and of the TF-MoDISco patterns; `tests`: the known-target tests; `tf_summary`: the TF knock-outs."""
    from deepreg.attribution.truth import motif_checks, regulator_checks

    truth, config = ctx.truth, ctx.config
    if truth is None:
        return Section()
    checks: list[dict] = []
    reg_check = regulator_checks(truth, table)
    motif_check = motif_checks(truth, comparisons, config.q_threshold)
    motif_check.to_csv(ctx.tables / "truth_motifs_filters.tsv", sep="\t", index=False)
    summary = {"regulators": reg_check, "planted_motifs": int(len(motif_check)),
               "planted_motifs_matched_by_filters": int(motif_check["matched"].sum()) if len(motif_check) else 0}
    if modisco_comparisons is not None:
        modisco_check = motif_checks(truth, modisco_comparisons, config.q_threshold)
        modisco_check.to_csv(ctx.tables / "truth_motifs_modisco.tsv", sep="\t", index=False)
        summary["planted_motifs_matched_by_modisco"] = int(modisco_check["matched"].sum())
        either = set(motif_check.loc[motif_check["matched"], "regulator"]) | set(
            modisco_check.loc[modisco_check["matched"], "regulator"])
        summary["planted_motifs_matched_either"] = len(either)
    master_symbols = truth.regulators.loc[truth.regulators["role"] == "master", "symbol"].tolist()
    planted_orfs = set(truth.planted["orf"])
    if tests is not None and len(tests):
        dl_tests = tests[(tests["method"] == "deeplift") & tests["regulator"].isin(planted_orfs)]
        summary["planted_target_tests"] = int(len(dl_tests))
        summary["planted_target_tests_p_0.01"] = int((dl_tests["p_value"] < 0.01).sum())
        master_tests = dl_tests[dl_tests["symbol"].isin(master_symbols)]
        summary["master_target_tests_p_0.01"] = int((master_tests["p_value"] < 0.01).sum())
    k = len(master_symbols)
    checks.append({"check": f"planted masters ({', '.join(master_symbols)}) at the top of the regulator table",
                   "result": f"precision at {k} = {reg_check[f'precision_at_{k}_masters']:.2f}, at 5 = "
                             f"{reg_check['precision_at_5_masters']:.2f}, at 10 = {reg_check['precision_at_10_masters']:.2f}; "
                             f"ranks {reg_check['master_ranks']}",
                   "criterion": "masters in the top 5", "passed": reg_check["recall_masters_in_top_5"] == 1.0})
    matched_names = motif_check.loc[motif_check["matched"], "regulator"].tolist() if len(motif_check) else []
    checks.append({"check": "planted motifs matched by first-layer filters (TomTom)",
                   "result": f"{len(matched_names)} of {len(motif_check)}: {', '.join(matched_names) or 'none'}",
                   "criterion": f"q < {config.q_threshold}", "passed": len(matched_names) > 0})
    if "planted_motifs_matched_by_modisco" in summary:
        modisco_names = modisco_check.loc[modisco_check["matched"], "regulator"].tolist()
        checks.append({"check": "planted motifs matched by TF-MoDISco patterns",
                       "result": f"{len(modisco_names)} of {len(modisco_check)}: {', '.join(modisco_names) or 'none'}",
                       "criterion": f"q < {config.q_threshold}", "passed": None})
    if tests is not None and len(tests):
        dl_tests = tests[(tests["method"] == "deeplift") & tests["regulator"].isin(planted_orfs)]
        detail = ", ".join(f"{r.symbol} {r.p_value:.1e}" for r in dl_tests.itertuples())
        master_ok = summary["master_target_tests_p_0.01"] == len(master_symbols)
        checks.append({"check": "known-target test for planted regulators (DeepLIFT)",
                       "result": f"{summary['planted_target_tests_p_0.01']} of {len(dl_tests)} at p < 0.01 ({detail})",
                       "criterion": "p < 0.01 for the planted masters", "passed": master_ok})
    for name, values in tf_summary.items():
        checks.append({"check": f"{name} knock-out moves its targets more than other genes",
                       "result": f"mean |change| ratio {values['ratio']:.2f}, p = {values['p_value']:.1e}",
                       "criterion": "ratio > 1, p < 0.01", "passed": values["ratio"] > 1 and values["p_value"] < 0.01})
    report.heading("6. Ground truth (simulation)")
    report.text(f"Checks against the planted regulators, targets and motifs in {truth.folder}.")
    report.table(motif_check, caption="planted motifs: best matching filter")
    return Section(summary={"truth": summary, "checks": [dict(c) for c in checks]})
