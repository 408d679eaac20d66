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
    for field in dataclasses.fields(SimulationConfig):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default,
                            help=f"(default: {field.default})")
    parser.set_defaults(func=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(SimulationConfig)}
    folder = simulate_compendium(args.out, SimulationConfig(**values))
    print(f"wrote {folder} (use it with: data.bundle: null, data.expression: {folder}/expression.pcl.gz, "
          f"data.promoters: {folder}/promoters.fa.gz, data.regulators: {folder}/regulators.txt)")
    return 0
