"""Benchmark: the seconds of each part of the attribution stage (`deepreg attribute`).

By default the stage as `deepreg attribute --known-targets bundled` runs it, on the yeast bundle
(5,659 genes with promoters x 173 conditions x 472 regulators) with the model of
configs/experiments/attribution-yeast.yaml built with random weights (training is not what is
timed; TF-MoDISco's time depends on how many seqlets a model's scores give, the rest on the sizes
only). It prints each part: regulator DeepLIFT over all pairs, gradient x input, the known-target
tests, sequence DeepLIFT and gradient x input, filter motifs and TomTom, TF-MoDISco, the filter, named
TF, automatic TF and measured-deletion knock-outs, the lookup terms, and the total. The issue's
target for the whole stage on the real compendium: 15 minutes on the 2-core CPU.

    python benchmarks/attribution_speed.py                                  # the whole stage, real size
    python benchmarks/attribution_speed.py --genes 500 --sequence-genes 50 --shuffles 3 --no-modisco
    python benchmarks/attribution_speed.py --config configs/experiments/bilinear-genes.yaml
    python benchmarks/attribution_speed.py --model models:/deepreg@champion  # a trained model and its data
    python benchmarks/attribution_speed.py --deeplift-only                  # regulator DeepLIFT alone (below)

`--deeplift-only` times what `docs/attribution.md` quotes: regulator DeepLIFT for every pair of a
Gasch-size dataset (random promoters and inputs, 6,107 x 173 x 472) through the notebook's
single-layer tensor-product model (256 x 19 filters, Dense 512 - 512); target 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "attribution-yeast.yaml"
PARTS = (("regulator_deeplift_s", "regulator DeepLIFT, all pairs"),
         ("regulator_gradient_s", "regulator gradient x input, all pairs"),
         ("known_targets_s", "known-target tests with decoys"),
         ("predictions_s", "predictions, all pairs"),
         ("sequence_deeplift_s", "sequence DeepLIFT"),
         ("sequence_gradient_s", "sequence gradient x input"),
         ("motifs_s", "filter motifs + TomTom"),
         ("modisco_s", "TF-MoDISco"),
         ("filter_knockouts_s", "filter knock-outs"),
         ("tf_knockouts_s", "named TF knock-outs"),
         ("auto_knockouts_s", "automatic TF knock-outs"),
         ("measured_deletions_s", "knock-outs vs measured deletions"),
         ("lookup_terms_s", "lookup terms"))


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), and how many cores this process may use."""
    name = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {cores} cores"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="run YAML whose data and model are timed "
                                                                      "(default: attribution-yeast.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a run config value, e.g. --set model.sequence.filters=[64]")
    parser.add_argument("--model", help="time a trained model (an MLflow model URI) on its training data instead")
    parser.add_argument("--tracking-uri", help="the MLflow store of --model")
    parser.add_argument("--genes", type=int, help="a random subset of genes (default: all; --deeplift-only: 6107)")
    parser.add_argument("--sequence-genes", type=int, default=200)
    parser.add_argument("--shuffles", type=int, default=10)
    parser.add_argument("--no-modisco", dest="modisco", action="store_false")
    parser.add_argument("--known-targets", action="append", default=None,
                        help="reference tables (default: 'bundled' on the yeast bundle)")
    parser.add_argument("--auto-knockouts", type=int, default=20)
    parser.add_argument("--deeplift-only", action="store_true", help="time regulator DeepLIFT alone (see above)")
    parser.add_argument("--json", help="write the timings to this file")
    args = parser.parse_args(argv)
    result = regulator_deeplift_only(args) if args.deeplift_only else stage_parts(args)
    result["cpu"] = cpu_model()
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def stage_parts(args) -> dict:
    """Run the stage and print the seconds of each part."""
    from deepreg.attribution.stage import AttributionConfig

    print(f"CPU: {cpu_model()}", flush=True)
    config = AttributionConfig(max_genes=args.genes, sequence_genes=args.sequence_genes, shuffles=args.shuffles,
                               modisco=args.modisco, tf_knockouts=("auto",), auto_knockouts=args.auto_knockouts,
                               known_targets=tuple(args.known_targets or ()))
    started = time.perf_counter()
    summary = _trained_model_summary(args, config) if args.model else _random_model_summary(args, config)
    total = time.perf_counter() - started
    timings = summary["timings"]
    genes = summary["regulators"]["pairs"] // summary["data"]["conditions"]
    print(f"\n{genes:,} of {summary['data']['genes']:,} genes x {summary['data']['conditions']} conditions x "
          f"{summary['data']['regulators']} regulators: {summary['regulators']['pairs']:,} pairs")
    for key, label in PARTS:
        if key in timings:
            print(f"  {label:<40} {timings[key]:8.1f} s")
    print(f"  {'everything else (data, report, ...)':<40} {total - sum(timings.values()):8.1f} s")
    print(f"  {'total':<40} {total:8.1f} s", flush=True)
    return {"parts_s": {key: round(value, 2) for key, value in timings.items()}, "total_s": round(total, 2),
            "pairs": summary["regulators"]["pairs"], "genes": genes,
            "auto_knockout_tfs": summary.get("knockouts", {}).get("auto", {}).get("tfs", 0),
            "target_total_s": 900, "within_target": total < 900}


def _random_model_summary(args, config) -> dict:
    """The stage on the run config's data with its model built with random weights (no MLflow run)."""
    import dataclasses

    import keras

    from deepreg.attribution._network import read_network
    from deepreg.attribution.stage import _compute
    from deepreg.cli._common import parse_overrides
    from deepreg.data.dataset import load_dataset
    from deepreg.models.build import build_model
    from deepreg.training.config import RunConfig

    run = RunConfig.from_files(args.config, overrides=parse_overrides(args.overrides))
    if not args.known_targets and run.data.bundle == "yeast":
        config = dataclasses.replace(config, known_targets=("bundled",))
    dataset = load_dataset(run.data)
    keras.utils.set_random_seed(0)
    model = build_model(run.model, dataset.sequence_length, dataset.n_regulators, n_genes=dataset.n_genes,
                        n_conditions=dataset.n_conditions)
    print(f"model {run.model.name} from {args.config}, random weights; data {run.data.bundle or run.data.expression}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="deepreg-attribution-speed-") as folder:
        return _compute(model, read_network(model), dataset, run.data, config, Path(folder),
                        lambda text: print(text, flush=True), title="attribution speed", subtitle="")


def _trained_model_summary(args, config) -> dict:
    """`deepreg attribute` on a trained model (a new MLflow run in its store)."""
    from deepreg.attribution.stage import run_attribution
    from deepreg.tracking.store import resolve_tracking_uri

    result = run_attribution(args.model, config, tracking_uri=resolve_tracking_uri(args.tracking_uri),
                             experiment="attribution-speed", say=lambda text: print(text, flush=True))
    return result.summary


def regulator_deeplift_only(args) -> dict:
    """Regulator DeepLIFT for every pair of a Gasch-size random dataset through the notebook's tensor model."""
    import keras
    import numpy as np

    from deepreg.attribution.deeplift import regulator_scores
    from deepreg.models.build import build_model
    from deepreg.models.config import HeadConfig, ModelConfig, SequenceConfig

    n_genes, n_conditions, n_regulators, length = args.genes or 6107, 173, 472, 1000
    keras.utils.set_random_seed(0)
    config = ModelConfig(sequence=SequenceConfig(filters=(256,), filter_width=(19,)), fusion="tensor",
                         head=HeadConfig(dense_units=(512, 512)))
    model = build_model(config, length, n_regulators)
    rng = np.random.default_rng(0)
    sequences = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (n_genes, length))]
    regulators = rng.normal(0, 1, (n_conditions, n_regulators)).astype(np.float32)
    pairs = n_genes * n_conditions
    print(f"{n_genes:,} genes x {n_conditions} conditions = {pairs:,} pairs, {n_regulators} regulators; "
          "model 256x19 tensor product, Dense 512-512", flush=True)
    started = time.perf_counter()

    def progress(done, total):
        if done == total or done % 640 == 0:
            print(f"  {done:,}/{total:,} genes, {time.perf_counter() - started:.1f} s", flush=True)

    sums = regulator_scores(model, sequences, regulators, reference="zero", reduce="abs_sum", progress=progress)
    seconds = time.perf_counter() - started
    return {"genes": n_genes, "conditions": n_conditions, "regulators": n_regulators, "pairs": pairs,
            "seconds": round(seconds, 2), "pairs_per_second": round(pairs / seconds),
            "summation_to_delta_max_error": float(sums.delta_error), "target_seconds": 300,
            "within_target": seconds < 300}


if __name__ == "__main__":
    raise SystemExit(main())
