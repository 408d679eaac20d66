"""`deepreg demo`: the product's loop on bundled data in about ten minutes.

A small study (`deepreg/configs/demo-DATA-study.yaml`: six trials, pruning on) with the network-free
baselines it has to beat, promotion of its champion (registry alias `champion`) and the
attribution stage on it, then where to look. Every run makes a new study (its name carries the
time), so running the demo twice keeps both.
"""

from __future__ import annotations

import argparse
import time
from importlib import resources

from deepreg.cli._common import add_tracking_options, keras_verbosity, mlflow_ui_hint, runs_page
from deepreg.errors import DeepRegError

DEMO_DATA = ("yeast", "simulated")
DEMO_MODEL = "deepreg-demo"


def register(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo", help="the whole loop on bundled data: a small study, baselines, promotion, attribution",
        description=__doc__)
    demo.add_argument("--data", choices=DEMO_DATA, default=None,
                      help="bundled dataset (default: yeast when bundled, else simulated)")
    demo.add_argument("--trials", type=int, default=None, help="trials of the study (default: the spec's, 6)")
    demo.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: the spec's)")
    demo.add_argument("--max-genes", type=int, default=None, help="train on a random subset of this many genes")
    demo.add_argument("--output", metavar="FOLDER", default=None,
                      help="where the attribution report and tables are kept (default: deepreg-demo/STUDY)")
    demo.add_argument("--model-name", default=DEMO_MODEL, help=f"registered model name (default: {DEMO_MODEL})")
    add_tracking_options(demo)
    demo.set_defaults(func=run_demo)


def demo_spec_path(data: str):
    path = resources.files("deepreg") / "configs" / f"demo-{data}-study.yaml"
    if not path.is_file():
        raise DeepRegError(f"no demo study for data {data!r} ({path} is missing)")
    return path


def default_demo_data() -> str:
    bundled = resources.files("deepreg") / "bundled"
    return next((name for name in DEMO_DATA if (bundled / name).is_dir()), "simulated")


def demo_spec(args: argparse.Namespace, data: str):
    """The packaged study spec with this run's name, trials, epochs and gene subset."""
    from deepreg.sweeps import load_spec

    for option, unit, value in (("--trials", "trial", args.trials), ("--epochs", "epoch", args.epochs),
                                ("--max-genes", "gene", args.max_genes)):
        if value is not None and value < 1:
            raise DeepRegError(f"{option}: expected at least 1 {unit}, got {value}")
    spec = load_spec(str(demo_spec_path(data)))
    spec = spec.changed(name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if args.epochs is not None:
        spec = spec.changed(epochs=args.epochs)
    if args.trials is not None:
        spec = spec.with_budget(trials=args.trials)
    if args.max_genes is not None:
        spec = spec.with_base_updates({"data.max_genes": args.max_genes})
    return spec


def run_demo(args: argparse.Namespace) -> int:
    import optuna

    from deepreg.sweeps import default_storage_url, run_sweep
    from deepreg.tracking.store import resolve_tracking_uri

    started = time.perf_counter()
    data = args.data or default_demo_data()
    spec = demo_spec(args, data)
    uri = resolve_tracking_uri(args.tracking_uri)
    storage = default_storage_url(uri)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    base = spec.base
    print(f"DeepREG demo on the bundled {data} data: study {spec.name}, {spec.budget.trials} trials of up to "
          f"{spec.epochs} epochs, split '{base.data.split}'"
          + (f", {base.data.max_genes:,} genes" if base.data.max_genes else ""), flush=True)

    with StudyProgress(spec.budget.trials) as progress:
        outcome = run_sweep(spec, storage=storage, tracking_uri=uri, experiment=args.experiment,
                            out=progress.line, verbose=keras_verbosity())
    best = outcome.best
    if best is None:
        raise DeepRegError(f"study {spec.name}: no trial finished, nothing to promote "
                           f"(deepreg study show {spec.name} --storage {storage})")
    print_comparison(outcome)

    from deepreg.tracking.registry import promote

    promotion = promote(study=spec.name, name=args.model_name, tracking_uri=uri, experiment=args.experiment)
    print(f"\npromoted trial {promotion.trial} ({promotion.run_id}) as {promotion.registry_uri}")
    if promotion.baseline is not None:
        print(("" if promotion.baseline.beaten else "warning: ") + promotion.baseline.describe()
              + ("" if promotion.baseline.beaten else "; promoted anyway, as the demo's champion"))

    report = run_demo_attribution(promotion.registry_uri, data, spec.name, args, uri)
    print()
    print(f"report:     {report}")
    print(f"the study:  deepreg study show {spec.name} --storage {storage}")
    print(f"look at it: {mlflow_ui_hint(uri)}   (experiment '{args.experiment}': the study's run, its trials "
          "nested under it, and the attribution run)")
    print(f"  then open {runs_page(outcome)}")
    print(f"Demo wall time: {time.perf_counter() - started:.0f} s")
    return 0


def print_comparison(outcome) -> None:
    """The study's table: the baselines it fitted, then its trials with their margins over the best one."""
    from deepreg.sweeps import describe_study

    print()
    print(describe_study(outcome.study))


def run_demo_attribution(model_uri: str, data: str, study: str, args: argparse.Namespace, uri: str):
    """The attribution stage on the champion, sized for the demo; returns the report's path."""
    from pathlib import Path

    from deepreg.attribution.config import AttributionConfig
    from deepreg.attribution.stage import run_attribution
    from deepreg.cli._attribute import headline_lines

    config = AttributionConfig(known_targets=("bundled",) if data == "yeast" else (), sequence_genes=100,
                               shuffles=5, modisco=False)
    folder = Path(args.output or Path("deepreg-demo") / study)
    print(f"\nattribution of {model_uri} ...", flush=True)
    result = run_attribution(model_uri, config, tracking_uri=uri, experiment=args.experiment,
                             run_name=f"attribution {study}", keep=folder,
                             say=lambda text: print(f"  {text}", flush=True))
    for check in result.summary.get("checks", []):
        status = "" if check.get("passed") is None else ("PASS " if check["passed"] else "FAIL ")
        print(f"  {status}{check['check']}: {check['result']}")
    for line in headline_lines(result.summary):
        print(f"  {line}")
    top = result.summary.get("regulators", {}).get("top") or []
    if top:
        print("  top 10 regulators: " + ", ".join(str(name) for name in top))
    return result.report


class StudyProgress:
    """A progress bar over the study's trials beside each trial's own line (tqdm, on stderr; on a
    terminal only: in a log the trial lines say as much)."""

    def __init__(self, trials: int | None):
        self.trials = trials
        self.bar = None

    def __enter__(self):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.trials, desc="study", unit="trial", leave=True, disable=None)
        return self

    def line(self, text: str) -> None:
        self.bar.write(text)
        if _is_trial_end(text):
            self.bar.update(1)

    def __exit__(self, *exc):
        self.bar.close()
        return False


def _is_trial_end(text: str) -> bool:
    """Whether a study line reports a trial's end ("trial 3 finished: ...", "... pruned: ...", "failed")."""
    words = text.split(maxsplit=3)
    return len(words) >= 3 and words[0] == "trial" and words[2].rstrip(":") in ("finished", "pruned", "failed")
