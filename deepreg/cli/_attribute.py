"""`deepreg attribute`: regulators, targets, sequence scores, motifs and knock-outs of a model, as an MLflow run."""

from __future__ import annotations

import argparse

from deepreg.cli._common import add_override_option, add_tracking_options, mlflow_ui_hint, parse_overrides


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
    attribute.add_argument("--motifs", dest="known_motifs", metavar="SOURCE",
                           help="known motifs: a MEME file or JASPAR2026:fungi (default)")
    attribute.add_argument("--knockout", dest="tf_knockouts", action="append", default=None, metavar="TF[=MOTIF]",
                           help="TF knock-out, e.g. MSN2=AGGGG or MSN2=MA0341.1 (repeatable; default: the planted "
                                "masters of simulated data)")
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
    attribute.add_argument("--output", metavar="FOLDER", help="also keep the tables, figures and report here")
    attribute.add_argument("--run-name", help="MLflow run name")
    add_override_option(attribute)
    add_tracking_options(attribute)
    attribute.set_defaults(func=run_attribute)


OPTION_KEYS = ("reference", "targets", "targets_of", "known_motifs", "tf_knockouts", "fold", "measured",
               "condition_groups", "sequence_genes", "shuffles", "max_genes", "plot_genes", "modisco", "truth")


def run_attribute(args: argparse.Namespace) -> int:
    from deepreg.attribution.stage import AttributionConfig, run_attribution
    from deepreg.tracking.store import resolve_tracking_uri

    values = {key: getattr(args, key) for key in OPTION_KEYS if getattr(args, key) is not None}
    overrides = {key.removeprefix("attribution."): value for key, value in parse_overrides(args.overrides).items()}
    config = AttributionConfig.from_dict({**values, **overrides}, source="deepreg attribute")
    uri = resolve_tracking_uri(args.tracking_uri)
    result = run_attribution(args.model, config, tracking_uri=uri, experiment=args.experiment, run_name=args.run_name,
                             keep=args.output, say=lambda text: print(text, flush=True))
    for check in result.summary.get("checks", []):
        status = "" if check.get("passed") is None else ("PASS " if check["passed"] else "FAIL ")
        print(f"  {status}{check['check']}: {check['result']}")
    print(f"attribution run {result.run_id}: report.html, tables/, figures/, motifs/ as artifacts"
          + (f"; copies in {args.output}" if args.output else ""))
    print(f"look at it with: {mlflow_ui_hint(uri)}")
    return 0
