"""`deepreg promote`: register a model in the MLflow model registry and point the champion alias at it."""

from __future__ import annotations

import argparse

from deepreg.cli._common import add_tracking_options


def register(subparsers) -> None:
    promote = subparsers.add_parser(
        "promote", help="register a run's model (or a study's best trial) and set the 'champion' alias",
        description="Register the model of a training run, or of the best finished trial of a sweep study, in the "
                    "MLflow model registry; move the alias (default champion) to the new version. The version records "
                    "its source run, study and trial, metrics and data fingerprint; earlier versions stay reachable.")
    source = promote.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", dest="run_id", metavar="RUN_ID", help="promote this run's logged model")
    source.add_argument("--study", metavar="NAME", help="promote the best finished trial of this sweep study")
    promote.add_argument("--name", default="deepreg", help="registered model name (default: deepreg)")
    promote.add_argument("--alias", default="champion", help="alias to move to the new version (default: champion)")
    promote.add_argument("--metric", help="metric that picks the best trial (default: the study's objective, "
                                          "e.g. validation_loss)")
    promote.add_argument("--direction", choices=("minimize", "maximize"), help="with --metric: which way is better")
    add_tracking_options(promote)
    promote.set_defaults(func=run_promote, experiment=None)


def run_promote(args: argparse.Namespace) -> int:
    from deepreg.tracking.registry import promote
    from deepreg.tracking.store import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    result = promote(run_id=args.run_id, study=args.study, name=args.name, alias=args.alias, tracking_uri=uri,
                     experiment=args.experiment, metric=args.metric, direction=args.direction)
    origin = f"trial {result.trial} of study {result.study}" if result.study else "run"
    score = f"; {result.metric} {result.value:.4f}" if result.value is not None else ""
    print(f"{'already registered' if result.reused else 'registered'}: {result.name} version {result.version} "
          f"from {origin} {result.run_id}{score}")
    print(f"alias '{result.alias}' -> version {result.version}"
          + (f" (previous champion: version {result.previous_version}, still models:/{result.name}/{result.previous_version})"
             if result.previous_version else ""))
    if result.baseline is not None:
        print(("" if result.baseline.beaten else "warning: ") + result.baseline.describe()
              + ("" if result.baseline.beaten else "; promoted anyway"))
    print(f"use it as: {result.registry_uri}    e.g. deepreg attribute --model {result.registry_uri}")
    return 0
