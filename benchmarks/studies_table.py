"""The real-data studies' table for docs/sweeps.md and docs/results/studies.json.

For each named study in the Optuna storage: trials, pruned, wall time (first trial start to last
trial end, plus the baselines fitted before trial 0), workers, the champion (best validation
objective) with its params, validation and test r, and the network-free baseline to beat that
the study fitted on the same pairs (chosen on validation, its test r).

    python benchmarks/studies_table.py yeast-genes yeast-conditions [--storage URL] \
        [--json docs/results/studies.json] [--update]
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import mlflow
from optuna.trial import TrialState

from deepreg.sweeps import BASELINES_ATTR, BaselineTable, StudySpec, default_storage_url, liveness, load_study
from deepreg.tracking.store import resolve_tracking_uri

SPECS = {"yeast-genes": "sweeps/yeast-genes.yaml", "yeast-random": "sweeps/yeast-random.yaml",
         "yeast-conditions": "sweeps/yeast-conditions.yaml"}


def study_record(name: str, storage: str) -> dict:
    study = load_study(name, storage)
    spec = StudySpec.from_dict(study.user_attrs["deepreg.spec"], source=f"study {name}")
    trials = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    champion = study.best_trial
    client = mlflow.MlflowClient(study.user_attrs["deepreg.tracking_uri"])
    run = client.get_run(champion.user_attrs["deepreg.run_id"])
    parent = client.get_run(study.user_attrs["deepreg.parent_run_id"])
    table = BaselineTable.from_dict(study.user_attrs[BASELINES_ATTR])
    best = table.best
    started = min(t.datetime_start for t in trials)
    ended = max(t.datetime_complete for t in trials)
    baseline_seconds = sum(row.seconds for row in table.rows if not row.cached)
    workers = [t.user_attrs.get(liveness.WORKER_ATTR, {}) for t in trials]
    return {
        "name": name, "spec": SPECS.get(name, ""), "split": spec.base.data.split, "trials": len(trials),
        "finished": len(finished), "pruned": len(trials) - len(finished),
        "wall_seconds": round((ended - started).total_seconds() + baseline_seconds),
        "baseline_seconds": round(baseline_seconds),
        "workers": len({(who.get("host", ""), who.get("pid")) for who in workers}),
        "champion_trial": champion.number, "champion_params": dict(champion.params),
        "champion_val_r": run.data.metrics.get("validation_pearson_r"),
        "champion_test_r": run.data.metrics.get("test_pearson_r"),
        "baseline_to_beat": best.test if best else None, "baseline_name": best.name if best else None,
        "beats_baseline": bool(best and run.data.metrics.get("test_pearson_r", -math.inf) > best.test),
        "parent_run_id": parent.info.run_id,
    }


def markdown(records: list[dict]) -> str:
    lines = ["| study | split | trials (pruned) | champion | val r | test r | baseline to beat | wall |",
             "|---|---|---|---|---|---|---|---|"]
    for record in records:
        params = ", ".join(f"{key}={_short(value)}" for key, value in record["champion_params"].items())
        lines.append(f"| {record['name']} | {record['split']} | {record['trials']} ({record['pruned']}) | "
                     f"trial {record['champion_trial']}: {params} | {record['champion_val_r']:.4f} | "
                     f"{record['champion_test_r']:.4f} | {record['baseline_name']} {record['baseline_to_beat']:.4f} | "
                     f"{record['wall_seconds'] / 60:.0f} min ({record['workers']} worker) |")
    return "\n".join(lines)


def _short(value):
    return f"{value:.3g}" if isinstance(value, float) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+")
    parser.add_argument("--storage", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--update", action="store_true", help="replace these studies' records, keep the others")
    args = parser.parse_args()
    storage = args.storage or default_storage_url(resolve_tracking_uri(None))
    records = [study_record(name, storage) for name in args.studies]
    command = "python benchmarks/studies_table.py " + " ".join(shlex.quote(word) for word in sys.argv[1:])
    for record in records:
        record["command"] = command
    print(markdown(records))
    if args.json:
        path = Path(args.json)
        kept = [r for r in json.loads(path.read_text()) if r["name"] not in args.studies] \
            if args.update and path.is_file() else []
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(kept + records, indent=2) + "\n")


if __name__ == "__main__":
    main()
