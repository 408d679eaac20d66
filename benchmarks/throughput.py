"""Training throughput, factorised vs naive, on a Gasch-size simulated dataset. Prints figures, asserts nothing.

For each model config: the factorised block model trains one full epoch (every training pair once,
blocks of genes x conditions); the naive pair model (same config, same initial weights, the
notebook's per-pair network) trains a few hundred steps of `--naive-batch` pairs and its epoch is
extrapolated from the steady-state rate, since a naive epoch takes about an hour here. Each
measurement runs in a fresh process, so peak resident memory (ru_maxrss) is its own. The
multiply-adds of each epoch are counted from the model (`deepreg.models.cost`) and set against a
matrix-product peak measured on this machine in the same run.

    PYTHONPATH=. python benchmarks/throughput.py                       # the three models, full size
    PYTHONPATH=. python benchmarks/throughput.py --models configs/models/concat.yaml --naive-steps 50
    PYTHONPATH=. python benchmarks/throughput.py --genes 600 --factorised-only   # quick look
    PYTHONPATH=. python benchmarks/throughput.py --models bilinear --naive-steps 100  # the two-tower models

`--models` takes model YAML files, run configs (their model section, e.g. configs/experiments/), the
names of the models built in the script (`BUILT_IN_MODELS`: a conv-tower bilinear model) and
`bilinear` for the two-tower family (the random-pairs and held-out-genes experiment configs and the
conv-tower model).

TensorFlow's oneDNN build pools large tensors in a BFC allocator that never returns memory; the
children run with TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1 (`--allocator system`, the default), which lowers
the peak of the tensor-product step by about 250 MB at the same speed.

Data: random one-hot promoters (G x L x 4), random log-ratios (G x C), random regulator inputs
(C x R), an 80/10/10 random split of the pairs; nothing depends on the simulator. `--precision
mixed_bfloat16` measures the same models with bf16 products (not the float32 reference function).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import time

import numpy as np

DEFAULT_MODELS = ("configs/models/single-layer-tensor.yaml", "configs/models/concat.yaml",
                  "configs/models/concat-gru-100.yaml")
# Block shapes (genes x conditions) that keep a step's memory well under 2 GB at full size. The
# recurrent model runs its state over every pair of a block, so its blocks are smaller.
DEFAULT_BLOCKS = {"single-layer-tensor": (256, 173), "concat": (256, 173), "concat-gru-100": (64, 173),
                  "bilinear-random": (128, 173), "bilinear-genes": (128, 173), "bilinear-conv": (128, 173)}
FALLBACK_BLOCK = (128, 173)
# Two-tower bilinear models (`model.fusion: bilinear`): the shipped experiment configs of random pairs
# (6-mer tower, per-gene embedding, baseline offset) and held-out genes (6-mer counts over the whole
# promoter and its proximal 250 bp, no embedding), and a mirrored conv tower given here, against
# Dense 256 regulators, rank 64 and no head.
BUILT_IN_MODELS = {
    "bilinear-conv": {"name": "bilinear-conv", "fusion": "bilinear", "rank": 64,
                      "regulators": {"dense_units": [256]}, "head": {"dense_units": [], "dropout": 0.0},
                      "sequence": {"conv_layers": 1, "filters": [128], "filter_width": [19],
                                   "reverse_complement": "mirrored", "pool": ["global"]}},
}
MODEL_GROUPS = {"bilinear": ("configs/experiments/bilinear-random.yaml", "configs/experiments/bilinear-genes.yaml",
                             "bilinear-conv")}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                        help=f"model YAML files or built-in names ({', '.join([*MODEL_GROUPS, *BUILT_IN_MODELS])})")
    parser.add_argument("--genes", type=int, default=6107)
    parser.add_argument("--conditions", type=int, default=173)
    parser.add_argument("--regulators", type=int, default=472)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--block-genes", type=int, help="factorised block: genes (default: per model, DEFAULT_BLOCKS)")
    parser.add_argument("--block-conditions", type=int, help="factorised block: conditions (default: per model)")
    parser.add_argument("--factorised-steps", type=int, default=None,
                        help="time this many blocks and extrapolate (default: one full epoch)")
    parser.add_argument("--naive-batch", type=int, default=100, help="pairs per naive step (the notebook's 100)")
    parser.add_argument("--naive-steps", type=int, default=200, help="naive steps timed (after 3 warm-up steps)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                        help="sgd: the notebook's SGD lr 0.01 momentum 0.5")
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32",
                        help="model.precision (mixed_bfloat16: bf16 products, float32 weights)")
    parser.add_argument("--allocator", choices=("system", "bfc"), default="system",
                        help="TF's allocator for oneDNN tensors: system malloc (returns memory) or its pooling BFC")
    parser.add_argument("--factorised-only", action="store_true")
    parser.add_argument("--naive-only", action="store_true")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.models = expand_models(args.models)
    return args


def expand_models(names: list[str]) -> list[str]:
    """The model list with each group name (`bilinear`) replaced by its models."""
    return [model for name in names for model in MODEL_GROUPS.get(name, (name,))]


# ----------------------------------------------------------------------------------------------
# data and models


def simulated_data(args) -> dict:
    """Gasch-size random arrays in the factored form the trainer reads."""
    from deepreg.data.splits import make_split

    rng = np.random.default_rng(args.seed)
    codes = rng.integers(0, 4, (args.genes, args.length), dtype=np.uint8)
    return {
        "sequences": np.eye(4, dtype=np.uint8)[codes],
        "labels": rng.normal(0.0, 0.6, (args.genes, args.conditions)).astype(np.float32),
        "regulators": rng.normal(0.0, 1.0, (args.conditions, args.regulators)).astype(np.float32),
        "split": make_split(args.genes, args.conditions, "random", (0.8, 0.1, 0.1), args.seed),
    }


def model_config(path: str):
    """A built-in model by name, or a model YAML file."""
    from deepreg.models.config import ModelConfig

    from deepreg._config import load_yaml
    from deepreg.training.config import RunConfig

    if path in BUILT_IN_MODELS:
        return ModelConfig.from_dict(BUILT_IN_MODELS[path], source=f"benchmarks/throughput.py: {path}")
    if "model" in load_yaml(path):  # a run config (configs/experiments/): its model section
        return RunConfig.from_files(path).model
    return ModelConfig.from_yaml(path)


def compiled_models(args, path: str):
    import keras

    from deepreg.models.build import build_models
    from deepreg.training.config import TrainingConfig
    from deepreg.training.losses import MaskedLoss
    from deepreg.training.train import make_optimizer

    config = model_config(path).with_updates({"precision": args.precision})
    keras.utils.set_random_seed(args.seed)
    block, pair = build_models(config, args.length, args.regulators, n_genes=args.genes, n_conditions=args.conditions)
    training = TrainingConfig(optimizer=args.optimizer, learning_rate=0.01 if args.optimizer == "sgd" else 1e-3,
                              momentum=0.5)
    return config, block, pair, lambda model: model.compile(optimizer=make_optimizer(training),
                                                            loss=MaskedLoss(config.task))


def step_timer():
    """A Keras callback recording each training step's wall time and the gaps between steps.

    Built on demand: the parent process never imports TensorFlow, each measurement's child does.
    """
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps: list[float] = []
            self.between: list[float] = []

        def on_train_begin(self, logs=None):
            self.train_begin = self.last_end = time.perf_counter()

        def on_train_batch_begin(self, batch, logs=None):
            self.step_begin = time.perf_counter()
            self.between.append(self.step_begin - self.last_end)

        def on_train_batch_end(self, batch, logs=None):
            self.last_end = time.perf_counter()
            self.steps.append(self.last_end - self.step_begin)

    return StepTimer()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----------------------------------------------------------------------------------------------
# measurements (each in its own process)


def measure_factorised(args, path: str) -> dict:
    from deepreg.data.batches import BlockBatches
    from deepreg.data.splits import TRAIN
    from deepreg.models.cost import block_step_cost

    data = simulated_data(args)
    config, block, _, compile_model = compiled_models(args, path)
    compile_model(block)
    default_genes, default_conditions = DEFAULT_BLOCKS.get(config.name, FALLBACK_BLOCK)
    block_genes, block_conditions = args.block_genes or default_genes, args.block_conditions or default_conditions
    batches = BlockBatches(data["sequences"], data["regulators"], data["labels"], data["split"], TRAIN,
                           block_genes=block_genes, block_conditions=block_conditions, seed=args.seed,
                           max_batches=args.factorised_steps, indices=config.uses_gene_index)
    costs = [block_step_cost(block, len(rows), len(columns))
             for rows, columns in map(batches.block, range(len(batches.order)))]
    parts = {part: sum(cost.parts()[part] for cost in costs) for part in costs[0].parts()}
    timer = step_timer()
    started = time.perf_counter()
    history = block.fit(batches, epochs=1, verbose=0, callbacks=[timer])
    wall = time.perf_counter() - started
    steady = timer.steps[2:] if len(timer.steps) > 4 else timer.steps
    steady_per_block = float(np.mean(steady))
    blocks_per_epoch = len(batches.order)
    steady_epoch = steady_per_block * blocks_per_epoch
    return {
        "model": config.name, "form": "factorised",
        "batch": f"{batches.block_genes} x {batches.block_conditions} block",
        "train_pairs": batches.n_pairs, "steps_timed": len(timer.steps), "steps_per_epoch": blocks_per_epoch,
        "wall_seconds": wall, "first_two_steps": float(sum(timer.steps[:2])),
        "before_first_step": timer.train_begin - started, "after_last_step": started + wall - timer.last_end,
        "longest_gap_between_steps": float(max(timer.between)),
        "epoch_seconds": wall if args.factorised_steps is None else steady_epoch + sum(timer.steps[:2]),
        "steady_epoch_seconds": steady_epoch, "extrapolated": args.factorised_steps is not None,
        "pairs_per_second": batches.n_pairs / steady_epoch, "epoch_multiply_adds": sum(parts.values()),
        "parts_multiply_adds": parts, "loss": float(history.history["loss"][-1]), "peak_rss_mb": peak_rss_mb(),
    }


def measure_naive(args, path: str) -> dict:
    from deepreg.data.batches import PairBatches
    from deepreg.data.splits import TRAIN
    from deepreg.models.cost import pair_step_cost

    data = simulated_data(args)
    config, _, pair, compile_model = compiled_models(args, path)
    compile_model(pair)
    warmup = 3
    batches = PairBatches(data["sequences"], data["regulators"], data["labels"], data["split"], TRAIN,
                          batch_pairs=args.naive_batch, seed=args.seed, max_batches=args.naive_steps + warmup,
                          indices=config.uses_gene_index)
    timer = step_timer()
    history = pair.fit(batches, epochs=1, verbose=0, callbacks=[timer])
    per_step = float(np.mean(timer.steps[warmup:]))
    pairs_per_second = args.naive_batch / per_step
    steps_per_epoch = int(np.ceil(batches.n_pairs / args.naive_batch))
    step_cost = pair_step_cost(pair, args.naive_batch)
    return {
        "model": config.name, "form": "naive", "batch": f"{args.naive_batch} pairs",
        "train_pairs": batches.n_pairs, "steps_timed": len(timer.steps) - warmup, "steps_per_epoch": steps_per_epoch,
        "epoch_seconds": batches.n_pairs / pairs_per_second, "extrapolated": True,
        "pairs_per_second": pairs_per_second,
        "epoch_multiply_adds": step_cost.total * steps_per_epoch,
        "parts_multiply_adds": {part: value * steps_per_epoch for part, value in step_cost.parts().items()},
        "loss": float(history.history["loss"][-1]), "peak_rss_mb": peak_rss_mb(),
    }


def measure_matmul_peak(_args=None, _path=None) -> dict:
    """Multiply-adds per second of a large float32 matrix product: the machine's practical ceiling.

    Through `keras.ops`, so on whichever backend `KERAS_BACKEND` names; reading the product back to
    numpy waits for it on backends that dispatch asynchronously (JAX).
    """
    import keras
    from keras import ops

    a = keras.random.normal((2048, 2048), seed=1)
    b = keras.random.normal((2048, 2048), seed=2)

    def product():
        return ops.convert_to_numpy(ops.matmul(a, b))

    product()
    rates = []
    for _ in range(5):
        started = time.perf_counter()
        product()
        rates.append(2048 ** 3 / (time.perf_counter() - started))
    return {"matmul_multiply_adds_per_second": float(np.max(rates))}


def _child(target, args, path, queue) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["TF_ONEDNN_USE_SYSTEM_ALLOCATOR"] = "1" if args.allocator == "system" else "0"
    try:
        queue.put(target(args, path))
    except Exception as error:  # reported in the parent's table
        queue.put({"model": path, "error": f"{type(error).__name__}: {error}"})


def in_fresh_process(target, args, path=None) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(target, args, path, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


# ----------------------------------------------------------------------------------------------
# report


def report(results: list[dict], peak: float, args, load_before, load_after) -> str:
    lines = [
        f"data: {args.genes:,} genes x {args.conditions} conditions, {args.regulators} regulators, L = {args.length}; "
        f"optimizer {args.optimizer}, precision {args.precision}, allocator {args.allocator}",
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"float32 matmul peak {peak / 1e9:.1f} GMAC/s; load average before {load_before}, after {load_after}",
        "",
        "| model | form | batch | pairs/s | epoch (s) | peak RSS (MB) | multiply-adds / epoch | achieved GMAC/s "
        "| % of matmul peak |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        if "error" in row:
            lines.append(f"| {row['model']} | error | {row['error']} | | | | | | |")
            continue
        seconds = row["steady_epoch_seconds"] if row["form"] == "factorised" else row["epoch_seconds"]
        achieved = row["epoch_multiply_adds"] / seconds
        epoch = f"{row['epoch_seconds']:,.1f}" + (" (extrapolated)" if row["extrapolated"] else "")
        lines.append(f"| {row['model']} | {row['form']} | {row['batch']} | {row['pairs_per_second']:,.0f} | {epoch} "
                     f"| {row['peak_rss_mb']:,.0f} | {row['epoch_multiply_adds']:.3g} | {achieved / 1e9:.1f} "
                     f"| {100 * achieved / peak:.0f} % |")
    lines.append("")
    by_model: dict[str, dict] = {}
    for row in results:
        by_model.setdefault(row["model"], {})[row.get("form")] = row
    for name, forms in by_model.items():
        if "factorised" in forms and "naive" in forms:
            speedup = forms["factorised"]["pairs_per_second"] / forms["naive"]["pairs_per_second"]
            lines.append(f"{name}: factorised / naive throughput = {speedup:,.0f}x")
        if "factorised" in forms:
            row = forms["factorised"]
            parts = ", ".join(f"{part} {value / row['epoch_multiply_adds']:.0%}"
                              for part, value in row["parts_multiply_adds"].items())
            lines.append(f"{name}: factorised epoch {row['wall_seconds']:.1f} s wall "
                         f"({row['first_two_steps']:.1f} s in the first two steps, tracing included); "
                         f"multiply-adds by part: {parts}")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    peak = in_fresh_process(measure_matmul_peak, args)["matmul_multiply_adds_per_second"]
    results = []
    for path in args.models:
        if not args.naive_only:
            results.append(in_fresh_process(measure_factorised, args, path))
            print(json.dumps(results[-1]), flush=True)
        if not args.factorised_only:
            results.append(in_fresh_process(measure_naive, args, path))
            print(json.dumps(results[-1]), flush=True)
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(report(results, peak, args, load_before, load_after))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "matmul_peak": peak, "results": results}, handle, indent=1)


if __name__ == "__main__":
    main()
