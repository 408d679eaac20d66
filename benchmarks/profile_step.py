"""Where the time of one factorised training step goes: each part timed alone, forward and backward.

One block of `--block-genes` x `--block-conditions` pairs of a Gasch-size model. Parts: assembling
the block from the factored arrays; the sequence tower (forward + weight gradients); the regulator
tower; the fusion layer (forward + gradients of its kernel and of its inputs); the head with the
masked loss; the optimizer update of every weight; then the whole step (`train_on_batch`) for
comparison with the sum of the parts. Each part is a compiled function, timed as the median of
`--repeats` runs after a warm-up, next to its multiply-adds (`deepreg.models.cost`).

    PYTHONPATH=. python benchmarks/profile_step.py --model configs/models/single-layer-tensor.yaml
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="configs/models/single-layer-tensor.yaml")
    parser.add_argument("--block-genes", type=int, default=256)
    parser.add_argument("--block-conditions", type=int, default=173)
    parser.add_argument("--regulators", type=int, default=472)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    return parser.parse_args(argv)


def median_seconds(function, repeats: int) -> float:
    import keras

    def run():
        outputs = function()
        for value in keras.tree.flatten(outputs):
            keras.ops.convert_to_numpy(value)

    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def gradients_of(forward, variables, watched=()):
    """A compiled function: forward pass and the gradients of a random projection of its output."""
    import tensorflow as tf

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            for tensor in watched:
                tape.watch(tensor)
            outputs = forward()
            objective = tf.reduce_sum(outputs * tf.random.stateless_normal(tf.shape(outputs), (1, 2)))
        return tape.gradient(objective, list(variables) + list(watched))
    return step


def main(argv=None) -> None:
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    from deepreg.data.batches import BlockBatches
    from deepreg.models.build import build_models
    from deepreg.models.config import ModelConfig
    from deepreg.models.cost import block_step_cost
    from deepreg.training.config import TrainingConfig
    from deepreg.training.losses import MaskedLoss
    from deepreg.training.train import make_optimizer

    config = ModelConfig.from_yaml(args.model)
    keras.utils.set_random_seed(0)
    model, _ = build_models(config, args.length, args.regulators)
    rng = np.random.default_rng(0)
    n_genes, n_conditions = args.block_genes, args.block_conditions
    sequences = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (n_genes, args.length))]
    regulators = rng.normal(size=(n_conditions, args.regulators)).astype(np.float32)
    labels = rng.normal(size=(n_genes, n_conditions)).astype(np.float32)
    split = (rng.random((n_genes, n_conditions)) < 0.8).astype(np.int8) - 1  # 0 = train, -1 = unused
    batches = BlockBatches(sequences, regulators, labels, split, 0, block_genes=n_genes,
                           block_conditions=n_conditions, shuffle=False)
    inputs, block_labels = batches[0]

    sequence_tower = model.get_layer("sequence_tower")
    regulator_tower = model.get_layer("regulator_tower")
    fusion = model.get_layer("fusion")
    head = model.layers[model.layers.index(fusion) + 1:]
    promoters = tf.constant(inputs["sequence"])
    regulator_inputs = tf.constant(inputs["regulators"])
    sequence_features = tf.constant(sequence_tower(promoters))
    regulator_features = tf.constant(regulator_tower(regulator_inputs))
    fused = tf.constant(fusion([sequence_features, regulator_features]))
    loss = MaskedLoss(config.task)
    target = tf.constant(block_labels)

    def run_head():
        outputs = fused
        for layer in head:
            outputs = layer(outputs, training=True)
        return loss(target, outputs)

    optimizer = make_optimizer(TrainingConfig(optimizer=args.optimizer, learning_rate=0.01))
    optimizer.build(model.trainable_variables)
    random_gradients = [tf.random.normal(v.shape) * 1e-6 for v in model.trainable_variables]

    @tf.function
    def apply():
        optimizer.apply_gradients(zip(random_gradients, model.trainable_variables))
        return optimizer.iterations

    model.compile(optimizer=make_optimizer(TrainingConfig(optimizer=args.optimizer, learning_rate=0.01)), loss=loss)

    parts = {
        "assemble block (numpy)": lambda: batches[0][1],
        "sequence tower": gradients_of(lambda: sequence_tower(promoters, training=True),
                                       sequence_tower.trainable_variables),
        "regulator tower": gradients_of(lambda: regulator_tower(regulator_inputs, training=True),
                                        regulator_tower.trainable_variables),
        "fusion": gradients_of(lambda: fusion([sequence_features, regulator_features]), fusion.trainable_variables,
                               watched=(sequence_features,)),
        "head + loss": gradients_of(run_head, [v for layer in head for v in layer.trainable_variables],
                                    watched=(fused,)),
        "optimizer update": apply,
    }
    cost = block_step_cost(model, n_genes, n_conditions).parts()
    cost["head + loss"] = cost.pop("head")
    print(f"{config.name}: one block of {n_genes} genes x {n_conditions} conditions "
          f"({n_genes * n_conditions:,} pairs); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| part | seconds | share of the sum | multiply-adds | GMAC/s |")
    print("|---|---:|---:|---:|---:|")
    timings = {name: median_seconds(function, args.repeats) for name, function in parts.items()}
    total = sum(timings.values())
    for name, seconds in timings.items():
        macs = cost.get(name, 0.0)
        rate = f"{macs / seconds / 1e9:.1f}" if macs else ""
        print(f"| {name} | {seconds:.3f} | {seconds / total:.0%} | {macs:.3g} | {rate} |")
    whole = median_seconds(lambda: model.train_on_batch(inputs, block_labels), args.repeats)
    print(f"| sum of the parts | {total:.3f} | | {sum(cost.values()):.3g} | {sum(cost.values()) / total / 1e9:.1f} |")
    print(f"| whole step (train_on_batch) | {whole:.3f} | | | {sum(cost.values()) / whole / 1e9:.1f} |")


if __name__ == "__main__":
    main()
