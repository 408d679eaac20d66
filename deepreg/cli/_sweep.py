"""`deepreg sweep`, `deepreg worker` and `deepreg study show`."""

from __future__ import annotations

import argparse
import signal

from deepreg.cli._common import add_override_option, add_tracking_options, mlflow_ui_hint, parse_overrides, runs_page
from deepreg.errors import DeepRegError


def register(subparsers) -> None:
    sweep = subparsers.add_parser(
        "sweep", help="create or resume a study from a spec (sweeps/*.yaml) and run its trials here",
        description="Create the study a spec describes, or resume it (same name: finished trials are kept), "
                    "and run trials in this process until the budget is used. A spec with stages runs the "
                    "baseline-then-refine workflow.")
    sweep.add_argument("spec", help="study spec YAML, e.g. sweeps/filter-width.yaml")
    sweep.add_argument("--storage", help="Optuna storage URL (default: journal:<MLflow store folder>/optuna.journal; "
                                         "or sqlite:///..., postgresql+psycopg2://...)")
    sweep.add_argument("--engine", choices=("optuna", "keras-tuner"), default="optuna",
                       help="search engine (default: optuna)")
    sweep.add_argument("--trials", type=int, help="total trials of the study (overrides the spec's budget.trials)")
    sweep.add_argument("--minutes", type=float, help="wall time of this process in minutes (overrides budget.minutes)")
    sweep.add_argument("--epochs", type=int, help="epochs per trial (overrides the spec's epochs)")
    sweep.add_argument("--name", help="study name (default: the spec's name; a changed base or space needs a new one)")
    add_override_option(sweep)
    add_tracking_options(sweep)
    sweep.set_defaults(func=run_sweep_command)

    worker = subparsers.add_parser(
        "worker", help="join a running study from another process or machine",
        description="Run trials of a study that `deepreg sweep` created; the spec, MLflow store and parent run "
                    "are read from the storage.")
    worker.add_argument("--study", required=True, help="study name (the spec's name)")
    worker.add_argument("--storage", required=True, help="the study's Optuna storage URL (printed by deepreg sweep)")
    worker.add_argument("--trials", type=int, help="run at most this many trials in this worker")
    worker.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the study to appear (default 60)")
    worker.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: the study's own)")
    worker.set_defaults(func=run_worker_command)

    study = subparsers.add_parser("study", help="look at studies",
                                  description="Look at the studies made by deepreg sweep (deepreg study show NAME).")
    actions = study.add_subparsers(dest="action", metavar="ACTION")
    show = actions.add_parser("show", help="the trials of a study, its best trial and the command to promote it",
                              description="Print a study's network-free baselines, its trials (state, value, test r "
                                          "and margin over the best baseline, params, epochs, run), its best trial "
                                          "and the command that promotes it.")
    show.add_argument("name", help="study name (or a refine spec's name, for its stages)")
    show.add_argument("--storage", help="Optuna storage URL (default: the journal next to the MLflow store)")
    show.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: the study's own)")
    show.set_defaults(func=run_study_show)
    study.set_defaults(func=lambda args: study.print_help() or 2)


def _prepare(args: argparse.Namespace) -> None:
    """Optuna's own per-trial log lines repeat ours: keep them for --verbose. SIGTERM acts as Ctrl-C."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.INFO if args.verbose else optuna.logging.ERROR)
    _interrupt_on_sigterm()


def _interrupt_on_sigterm() -> None:
    """A scheduler's SIGTERM stops the current trial the way Ctrl-C does (marked, re-queued)."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass


def run_sweep_command(args: argparse.Namespace) -> int:
    from deepreg.sweeps import default_storage_url, load_spec, run_keras_tuner, run_refine, run_sweep
    from deepreg.tracking.store import resolve_tracking_uri

    spec = load_spec(args.spec)
    overrides = parse_overrides(args.overrides)
    if overrides:
        spec = spec.with_base_updates(overrides)
    if args.name:
        spec = spec.changed(name=args.name)
    if args.epochs is not None:
        spec = spec.changed(epochs=args.epochs)
    if args.trials is not None or args.minutes is not None:
        if args.trials is not None and args.trials < 1:
            raise DeepRegError("--trials: expected at least 1 trial")
        spec = spec.with_budget(trials=args.trials, minutes=args.minutes)
    spec.validate_points()  # every grid point (and a sample of a continuous space) before trial 0
    uri = resolve_tracking_uri(args.tracking_uri)
    storage = args.storage or default_storage_url(uri)
    _prepare(args)
    if args.engine == "keras-tuner":
        if spec.is_refine:
            raise DeepRegError(f"{args.spec}: the refine workflow runs on the optuna engine only")
        outcome = run_keras_tuner(spec, tracking_uri=uri, experiment=args.experiment)
        best = outcome.best
        if best:
            print(f"best: trial {best['number']}, {spec.objective.label()} {best['value']:.4f}, run {best['run_id']}")
        for trial in outcome.failed:
            print(f"trial {trial['number']} {trial['state']}: {trial['reason']}")
        print(f"look at it with: {mlflow_ui_hint(uri)}")
        return 1 if outcome.trials and len(outcome.failed) == len(outcome.trials) else 0
    if spec.is_refine:
        run_refine(spec, storage=storage, tracking_uri=uri, experiment=args.experiment)
        print(f"look at it with: {mlflow_ui_hint(uri)}; stages: deepreg study show {spec.name} --storage {storage}")
        return 0
    outcome = run_sweep(spec, storage=storage, tracking_uri=uri, experiment=args.experiment)
    _print_end(outcome, spec, storage)
    return 0


def run_worker_command(args: argparse.Namespace) -> int:
    from deepreg.sweeps import StudySpec, run_worker

    _prepare(args)
    outcome = run_worker(args.study, storage=args.storage, tracking_uri=args.tracking_uri, trials=args.trials,
                         wait_seconds=args.wait)
    spec = StudySpec.from_dict(outcome.study.user_attrs["deepreg.spec"], source=f"study {args.study}")
    _print_end(outcome, spec, args.storage)
    return 0


def _print_end(outcome, spec, storage: str) -> None:
    best = outcome.best
    print(f"stopped: {outcome.stopped_by or 'done'}; {outcome.trials_here} trials run in this process")
    if best is not None:
        print(f"best: trial {best.number}, {spec.objective.label()} {best.value:.4f}, "
              f"run {best.user_attrs.get('deepreg.run_id', '?')}")
    print(f"the table: deepreg study show {spec.name} --storage {outcome.storage_url}")
    print(f"look at it with: {mlflow_ui_hint(outcome.tracking_uri)}")
    print(f"  then open {runs_page(outcome)} (the study's run, its trials nested under it)")


def run_study_show(args: argparse.Namespace) -> int:
    from deepreg.sweeps import default_storage_url, describe_refine, describe_study, open_storage, study_names
    from deepreg.tracking.store import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    storage = args.storage or default_storage_url(uri)
    info = open_storage(storage, must_exist=True)
    names = study_names(info)
    if args.name in names:
        import optuna
        print(describe_study(optuna.load_study(study_name=args.name, storage=info.storage),
                             tracking_uri=args.tracking_uri))
        return 0
    stages = sorted(n for n in names if n.startswith(f"{args.name}."))
    if stages:
        print(describe_refine(args.name, stages, info))
        return 0
    known = ", ".join(names) if names else "none"
    raise DeepRegError(f"study {args.name!r}: not in {storage} (studies there: {known})")
