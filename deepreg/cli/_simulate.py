"""`deepreg simulate`: write a simulated yeast-like compendium with its ground truth."""

from __future__ import annotations

import argparse
import dataclasses

from deepreg.data.simulate import SimulationConfig, simulate_compendium


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate", help="write a simulated compendium (planted JASPAR motifs, known regulators, ground truth)",
        description="Write expression, promoters, regulators and truth/ (which regulator binds which motif, "
                    "which genes are targets) in the bundle layout. Deterministic for a seed.")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--config", metavar="FILE", help="a YAML of the simulation keys below (n_genes: 500, ...); "
                                                         "the options given here override it")
    for field in dataclasses.fields(SimulationConfig):
        parser.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, type=type(field.default),
                            default=None, help=f"(default: {field.default})")
    parser.set_defaults(func=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    config = SimulationConfig.from_yaml(args.config) if args.config else SimulationConfig()
    given = {field.name: getattr(args, field.name) for field in dataclasses.fields(SimulationConfig)
             if getattr(args, field.name) is not None}
    source = f"{args.config} with the options given" if args.config else None
    folder = simulate_compendium(args.out, config.with_updates(given, source=source))
    print(f"wrote {folder} (use it with: data.bundle: null, data.expression: {folder}/expression.pcl.gz, "
          f"data.promoters: {folder}/promoters.fa.gz, data.regulators: {folder}/regulators.txt)")
    return 0
