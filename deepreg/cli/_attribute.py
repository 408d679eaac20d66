"""`deepreg attribute`: regulators, targets, sequence scores, motifs and knock-outs of a model, as an MLflow run."""

from __future__ import annotations

import argparse

from deepreg.cli._common import add_override_option, add_tracking_options, mlflow_ui_hint, parse_overrides
from deepreg.errors import DeepRegError


def register(subparsers) -> None:
    attribute = subparsers.add_parser(
        "attribute", help="run the attribution stage on a model (DeepLIFT, motifs, knock-outs) and log a report",
        description="Interpret a trained model as its own MLflow run: regulator importance (DeepLIFT and gradient x "
                    "input over all gene x condition pairs), a known-target test, promoter DeepLIFT with "
                    "dinucleotide-shuffled references and position bias, filter motifs matched to JASPAR with TomTom, "
                    "TF-MoDISco, and in-silico filter and TF knock-outs; tables, figures and report.html as artifacts.")
    attribute.add_argument("--model", default="models:/deepreg@champion",
                           help="model URI (default: models:/deepreg@champion; also models:/NAME/VERSION, runs:/ID/model)")
    attribute.add_argument("--reference", choices=("zero", "mean"), help="regulator reference (default: zero = no change)")
    attribute.add_argument("--targets", metavar="FILE", help="known targets: a table with regulator and gene columns, "
                                                              "or a gene list with --targets-of")
    attribute.add_argument("--targets-of", metavar="REGULATOR", help="the regulator of a plain gene-list --targets file")
    attribute.add_argument("--known-targets", dest="known_targets", action="append", default=None,
                           metavar="TABLE|FOLDER|bundled",
                           help="reference TF -> target table (columns TF, TARGET_ORF; TFs by ORF or symbol), a "
                                "folder of one gene list per TF, or 'bundled' (the yeast bundle's Balaji 2006, "
                                "MacIsaac 2006 and Hu 2007 tables); repeatable. Runs the decoy-controlled "
                                "known-target test per reference")
    attribute.add_argument("--motifs", dest="known_motifs", metavar="SOURCE",
                           help="known motifs: a MEME file or JASPAR2026:fungi (default)")
    attribute.add_argument("--knockout", dest="tf_knockouts", action="append", default=None, metavar="TF[=MOTIF]",
                           help="TF knock-out, e.g. MSN2=AGGGG or MSN2=MA0341.1 (repeatable; default: the planted "
                                "masters of simulated data); 'auto': every TF with known targets and a motif of the "
                                "same name (the default with --known-targets when no TF is named)")
    attribute.add_argument("--auto-knockouts", dest="auto_knockouts", type=int, metavar="N",
                           help="the most TFs knocked out by --knockout auto, those with the most known targets "
                                "first (default 20; 0: none)")
    attribute.add_argument("--knockout-conditions", dest="knockout_conditions", type=int, metavar="N",
                           help="conditions an automatic knock-out is predicted in: the N where the TF's input is "
                                "highest (default 16; 0: all)")
    attribute.add_argument("--fold", type=float, help="expression lowering factor of a TF knock-out (default 32)")
    attribute.add_argument("--measured", metavar="TF=FILE", help="measured knock-out profile (gene, value) of a TF")
    attribute.add_argument("--condition-groups", metavar="FILE", help="condition -> group table for the knock-outs")
    attribute.add_argument("--sequence-genes", type=int, help="promoters for sequence DeepLIFT (default 200)")
    attribute.add_argument("--shuffles", type=int, help="dinucleotide-shuffled references per promoter (default 10)")
    attribute.add_argument("--genes", dest="max_genes", type=int, help="a random subset of genes (default: all)")
    attribute.add_argument("--plot-gene", dest="plot_genes", action="append", default=None, metavar="GENE",
                           help="promoter to plot (repeatable; default: the 3 with the largest scores)")
    attribute.add_argument("--no-modisco", dest="modisco", action="store_false", default=None, help="skip TF-MoDISco")
    attribute.add_argument("--truth", metavar="FOLDER", help="ground-truth folder (default: the bundle's, if any; "
                                                             "'none' to skip)")
    attribute.add_argument("--no-measured-deletions", dest="measured_deletions", action="store_false", default=None,
                           help="skip the knock-outs against the compendium's measured deletions")
    attribute.add_argument("--output", metavar="FOLDER", help="also keep the tables, figures and report here")
    attribute.add_argument("--results-json", metavar="FILE",
                           help="also write the headline figures as JSON (e.g. docs/results/attribution-yeast.json)")
    attribute.add_argument("--run-name", help="MLflow run name")
    attribute.add_argument("--config", metavar="FILE", help="a YAML of attribution keys (the options above and "
                                                            "--set override it)")
    add_override_option(attribute)
    add_tracking_options(attribute)
    attribute.set_defaults(func=run_attribute)


OPTION_KEYS = ("reference", "targets", "targets_of", "known_motifs", "tf_knockouts", "auto_knockouts",
               "knockout_conditions", "fold", "measured",
               "condition_groups", "sequence_genes", "shuffles", "max_genes", "plot_genes", "modisco", "truth",
               "known_targets", "measured_deletions")


def check_source_run(model_uri: str, tracking_uri: str) -> None:
    """A runs:/ID/... model must name a run of this store (models:/ URIs are checked by the registry)."""
    if not model_uri.startswith("runs:/"):
        return
    import mlflow

    run_id = model_uri.removeprefix("runs:/").split("/")[0]
    try:
        mlflow.MlflowClient(tracking_uri).get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise DeepRegError(f"--model {model_uri}: no run {run_id!r} in the tracking store {tracking_uri} "
                           "(expected runs:/RUN_ID/model of a run there, or models:/NAME@ALIAS)") from None


def run_attribute(args: argparse.Namespace) -> int:
    from deepreg.attribution.stage import run_attribution
    from deepreg.tracking.store import resolve_tracking_uri

    config = attribution_config(args)
    uri = resolve_tracking_uri(args.tracking_uri)
    check_source_run(args.model, uri)
    result = run_attribution(args.model, config, tracking_uri=uri, experiment=args.experiment, run_name=args.run_name,
                             keep=args.output, say=lambda text: print(text, flush=True), results_json=args.results_json,
                             command=_command_line())
    for check in result.summary.get("checks", []):
        status = "" if check.get("passed") is None else ("PASS " if check["passed"] else "FAIL ")
        print(f"  {status}{check['check']}: {check['result']}")
    for line in headline_lines(result.summary):
        print(f"  {line}")
    if args.results_json:
        print(f"results: {args.results_json}")
    print(f"attribution run {result.run_id}: report.html, tables/, figures/, motifs/ as artifacts"
          + (f"; copies in {args.output}" if args.output else ""))
    print(f"look at it with: {mlflow_ui_hint(uri)}")
    return 0


def attribution_config(args: argparse.Namespace):
    """The command's options and `--set` overrides on top of `--config FILE` (or the defaults)."""
    from deepreg.attribution.config import AttributionConfig

    from_file = AttributionConfig.from_yaml(args.config).to_dict() if args.config else {}
    values = {key: getattr(args, key) for key in OPTION_KEYS if getattr(args, key) is not None}
    overrides = {key.removeprefix("attribution."): value for key, value in parse_overrides(args.overrides).items()}
    return AttributionConfig.from_dict({**from_file, **values, **overrides}, source="deepreg attribute")


def _command_line() -> str:
    import shlex
    import sys

    return "deepreg " + " ".join(shlex.quote(word) for word in sys.argv[1:])


def headline_lines(summary: dict) -> list[str]:
    """One line per headline figure: known targets per reference, MSN2/4, deletions, motifs, top 10."""
    lines = []
    for name, values in summary.get("known_targets", {}).items():
        lines.append(f"known targets {name}: {values['tfs_tested']} TFs, AUROC > 0.5 for "
                     f"{values['fraction_tfs_auroc_above_half']:.0%}, q < 0.1 for "
                     f"{values.get('fraction_tfs_q_below_0.1', float('nan')):.0%}")
        for tf in ("msn2", "msn4"):
            if tf in values:
                line = values[tf]
                lines.append(f"  {tf.upper()}: AUROC {line['auroc']:.3f}, rank {line['rank']}/{line['regulators']}, "
                             f"paper-style p {line['mwu_p']:.2g}, decoy p {line['decoy_p']:.2g}")
        shares = values.get("per_gene_share", {})
        if shares:
            lines.append(f"  on attribution shares: AUROC > 0.5 for {shares['fraction_tfs_auroc_above_half']:.0%}, "
                         f"q < 0.1 for {shares.get('fraction_tfs_q_below_0.1', float('nan')):.0%}"
                         + "".join(f"; {tf.upper()} rank {shares[tf]['rank']}, decoy p {shares[tf]['decoy_p']:.2g}"
                                   for tf in ("msn2", "msn4") if tf in shares))
    for key, values in summary.get("knockouts", {}).get("measured_deletions", {}).items():
        lines.append(f"knock-out vs measured {key}: Spearman {values['spearman']:.3f} over {values['genes']} genes, "
                     f"{values['spearman_top']:.3f} over the top movers"
                     + ("" if values["mutants_held_out"] else " (deletion arrays were in training)"))
    for name, values in summary.get("knockouts", {}).get("auto", {}).get("references", {}).items():
        lines.append(f"automatic TF knock-outs vs {name}: {values['tfs']} TFs, AUROC > 0.5 for "
                     f"{values['fraction_tfs_auroc_above_half']:.0%}, q < 0.1 for "
                     f"{values.get('fraction_tfs_q_below_0.1', float('nan')):.0%}, {values['tfs_rank_1']} first among "
                     f"the knock-outs on their own targets")
    motifs = summary.get("motifs", {})
    if "matched_q0.1" in motifs:
        lines.append(f"filters matched: {motifs['matched_q0.1']} at q < 0.1, {motifs['matched_q0.05']} at q < 0.05 "
                     f"of {motifs['filters']}")
    published = summary.get("regulators", {}).get("published_overlap")
    if published:
        lines.append(f"top 10 regulators among published ones: {published['top10_overlap_known']} "
                     f"(hypergeometric p {published['top10_overlap_p']:.2g})")
    for term, values in summary.get("lookup_terms", {}).items():
        lines.append(f"{term.replace('_', ' ')}: {values['variance_share']:.1%} of the prediction variance (not regulation)")
    return lines
