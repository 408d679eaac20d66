"""Benchmark: regulator DeepLIFT scores for every (gene, condition) pair of a Gasch-size dataset.

The single-layer tensor-product model of the notebook (256 filters x 19 bp, global max pool, outer
product with the 472 raw regulator inputs, Dense 512 - 512 - 1) with random weights, on 6,107 random
promoters of 1,000 bp and 173 conditions: 1,056,511 pairs x 472 regulators. Target: under 5 minutes
on a 2-core CPU. Scores are reduced as the attribution stage does (sums of |score| per gene and
per condition); summation-to-delta is checked on every pair as it goes.

    python benchmarks/attribution_speed.py                 # the full Gasch-size run
    python benchmarks/attribution_speed.py --genes 500     # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=6107)
    parser.add_argument("--conditions", type=int, default=173)
    parser.add_argument("--regulators", type=int, default=472)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--filters", type=int, default=256)
    parser.add_argument("--width", type=int, default=19)
    parser.add_argument("--block-genes", type=int, default=64)
    parser.add_argument("--rule", choices=("rescale", "gradient"), default="rescale")
    parser.add_argument("--json", help="write the timings to this file")
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from deepreg.attribution.deeplift import regulator_scores
    from deepreg.models.build import build_model
    from deepreg.models.config import HeadConfig, ModelConfig, SequenceConfig

    keras.utils.set_random_seed(0)
    config = ModelConfig(sequence=SequenceConfig(filters=(args.filters,), filter_width=(args.width,)),
                         fusion="tensor", head=HeadConfig(dense_units=(512, 512)))
    model = build_model(config, args.length, args.regulators)
    rng = np.random.default_rng(0)
    sequences = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (args.genes, args.length))]
    regulators = rng.normal(0, 1, (args.conditions, args.regulators)).astype(np.float32)

    pairs = args.genes * args.conditions
    print(f"{args.genes:,} genes x {args.conditions} conditions = {pairs:,} pairs, {args.regulators} regulators; "
          f"model {args.filters}x{args.width} tensor product, Dense 512-512")
    marks = []
    started = time.perf_counter()

    def progress(done, total):
        marks.append((done, time.perf_counter() - started))
        if len(marks) % 10 == 0 or done == total:
            print(f"  {done:,}/{total:,} genes, {marks[-1][1]:.1f} s", flush=True)

    sums = regulator_scores(model, sequences, regulators, reference="zero", rule=args.rule, reduce="abs_sum",
                            block_genes=args.block_genes, progress=progress)
    seconds = time.perf_counter() - started
    result = {"genes": args.genes, "conditions": args.conditions, "regulators": args.regulators, "pairs": pairs,
              "rule": args.rule, "seconds": round(seconds, 2), "pairs_per_second": round(pairs / seconds),
              "summation_to_delta_max_error": float(sums.delta_error), "cpu_count": os.cpu_count(),
              "target_seconds": 300, "within_target": seconds < 300}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
