"""Every named config of `configs/models/` trains: shrunk to tiny widths, same structure.

A test keeps each config's depth, pooling kind, reverse-complement handling, recurrent layer and
fusion, and shrinks widths (filters, units) and the pool factors (in proportion to the positions
left, since the test promoters are 120 bp rather than 1000) so that two epochs take seconds.
"""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from deepreg.data.config import DataConfig
from deepreg.data.dataset import load_dataset
from deepreg.data.splits import TRAIN
from deepreg.models.config import ModelConfig
from deepreg.training.config import TrainingConfig
from deepreg.training.evaluate import predict_matrix, score_pairs
from deepreg.training.train import fit

CONFIGS = sorted((Path(__file__).parents[1] / "configs" / "models").glob("*.yaml"))
LENGTH, FULL_LENGTH = 120, 1000


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic import write_compendium

    folder = tmp_path_factory.mktemp("architectures")
    files = write_compendium(folder / "data", n_genes=64, n_conditions=12, length=LENGTH, seed=4)
    config = DataConfig(bundle=None, expression=str(files["expression"]), promoters=str(files["promoters"]),
                        regulators=str(files["regulators"]), sequence_length=LENGTH, cache_dir=str(folder / "cache"))
    return config, load_dataset(config)


def shrink(config: ModelConfig) -> ModelConfig:
    """The same architecture with tiny widths and pool factors scaled to 120 bp promoters."""
    spec = config.sequence
    scale = LENGTH / FULL_LENGTH
    pools = [pool if pool in ("none", "global") or int(pool) <= 4 else str(max(2, round(int(pool) * scale)))
             for pool in spec.pool]
    strides = [0 if stride == 0 else max(1, math.floor(stride * scale)) for stride in spec.pool_stride]
    updates = {
        "sequence.filters": [min(f, 6) for f in spec.filters],
        "sequence.filter_width": [min(w, 40) for w in spec.filter_width],
        "sequence.pool": pools, "sequence.pool_stride": strides,
        "sequence.recurrent_units": min(spec.recurrent_units, 6),
        "sequence.dense_units": [min(u, 12) for u in spec.dense_units],
        "regulators.dense_units": [min(u, 8) for u in config.regulators.dense_units],
        "head.dense_units": [min(u, 12) for u in config.head.dense_units],
        "head.dropout": min(config.head.dropout, 0.1),
    }
    return config.with_updates(updates)


def train_loss(model, dataset, labels, split, task) -> float:
    predictions = predict_matrix(model, dataset.sequences, dataset.regulator_inputs())
    return score_pairs(predictions, labels, split == TRAIN, task)["loss"]


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_named_config_trains_two_epochs_and_its_loss_falls(path, tiny_data):
    data_config, dataset = tiny_data
    config = shrink(ModelConfig.from_yaml(path))
    training = TrainingConfig(epochs=2, block_genes=16, block_conditions=12, learning_rate=1e-2,
                              optimizer="adam", train_metrics_genes=16)
    split = dataset.split(data_config)
    labels = dataset.labels(config.task, data_config)
    before = _untrained_loss(config, dataset, labels, split, training)
    result = fit(dataset, data_config, config, training, verbose=0)
    losses = result.history["loss"]
    assert len(losses) == 2 and all(np.isfinite(losses))
    after = train_loss(result.model, dataset, labels, split, config.task)
    assert np.isfinite(after) and after < before, (before, after)


def _untrained_loss(config, dataset, labels, split, training) -> float:
    import keras

    from deepreg.models.build import build_model

    keras.utils.set_random_seed(training.seed)
    model = build_model(config, dataset.sequence_length, dataset.n_regulators)
    return train_loss(model, dataset, labels, split, config.task)


def test_naive_implementation_trains_the_pair_model_and_the_block_model_gets_its_weights(tiny_data):
    data_config, dataset = tiny_data
    config = shrink(ModelConfig.from_yaml(CONFIGS[0].parent / "single-layer-tensor.yaml"))
    training = TrainingConfig(epochs=2, block_genes=16, block_conditions=12, learning_rate=1e-2,
                              train_metrics_genes=16, max_steps_per_epoch=6)
    split = dataset.split(data_config)
    labels = dataset.labels("regression", data_config)
    before = _untrained_loss(config, dataset, labels, split, training)
    result = fit(dataset, data_config, config.with_updates({"implementation": "naive"}), training, verbose=0)
    assert result.model.name == "deepreg_block"
    assert train_loss(result.model, dataset, labels, split, "regression") < before


def test_deepreg_train_reads_a_named_model_config(tiny_data, tracking_uri, tmp_path, capsys):
    from deepreg.cli import main

    data_config, _ = tiny_data
    model_file = tmp_path / "concat-gru.yaml"
    model_file.write_text(shrink(ModelConfig.from_yaml(CONFIGS[0].parent / "concat-gru-491.yaml")).to_yaml())
    run_file = tmp_path / "run.yaml"
    run_file.write_text("data:\n" + "".join(f"  {k}: {v!r}\n" for k, v in data_config.to_dict().items()
                                            if isinstance(v, (str, int))))
    status = main(["train", "--config", str(run_file), "--model", str(model_file), "--tracking-uri", tracking_uri,
                   "--set", "training.epochs=1", "--set", "training.block_genes=32"])
    assert status == 0
    assert "run " in capsys.readouterr().out
