"""`deepreg baselines`: the network-free baselines a network has to beat, on any data and split."""

from __future__ import annotations

import argparse
import sys
import time

from deepreg.cli._common import add_override_option, parse_overrides


def register(subparsers) -> None:
    command = subparsers.add_parser(
        "baselines", help="fit the network-free baselines on a run config's data and split; print their scores",
        description="Fit every network-free baseline (zero, gene and condition means, additive, low-rank "
                    "completion, trans ridge on the regulators, cis k-mer ridges on the promoters) on the train "
                    "pairs of a run config's split, choose each one's hyperparameter on its validation pairs, and "
                    "print its validation and test score: the table `deepreg study show` prints for a study.")
    command.add_argument("--config", help="run YAML (its data section, split and model.task are used)")
    command.add_argument("--skip", action="append", default=[], metavar="NAME",
                         help="leave out a baseline, e.g. --skip cis_kmer_proximal_ridge (repeatable)")
    command.add_argument("--only", action="append", default=[], metavar="NAME",
                         help="fit only these baselines (repeatable)")
    add_override_option(command)
    command.set_defaults(func=run_baselines)


def run_baselines(args: argparse.Namespace) -> int:
    from deepreg.data.dataset import load_dataset
    from deepreg.sweeps import compute_baselines, format_table
    from deepreg.training.config import RunConfig

    config = RunConfig.from_files(args.config, overrides=parse_overrides(args.overrides))
    names = chosen_names(args.only, args.skip)
    started = time.perf_counter()
    dataset = load_dataset(config.data)
    _progress_line(f"data: {dataset.n_genes:,} genes x {dataset.n_conditions:,} conditions, "
                   f"{config.data.split} split ({time.perf_counter() - started:.1f} s)")
    table = compute_baselines(config, dataset, names, progress=_show_progress)
    print(format_table(table))
    return 0


def chosen_names(only: list[str], skip: list[str]) -> tuple[str, ...]:
    """The baselines to fit, in their usual order: --only's (all when absent) less --skip's."""
    from deepreg.baselines import BASELINE_NAMES
    from deepreg.sweeps import check_names

    wanted = check_names(only, "command line", "--only") if only else set(BASELINE_NAMES)
    skipped = check_names(skip, "command line", "--skip")
    return tuple(name for name in BASELINE_NAMES if name in wanted and name not in skipped)


def _show_progress(index: int, total: int, name: str) -> None:
    _progress_line(f"[{index}/{total}] fitting {name} ...")


def _progress_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
