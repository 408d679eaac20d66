"""Native DeepLIFT: summation to delta, gradients, and agreement with the authors' deeplift package."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deepreg.attribution import deeplift
from deepreg.attribution._network import read_network
from deepreg.attribution.ersatz import dinucleotide_counts, dinucleotide_shuffle
from deepreg.errors import DeepRegError
from deepreg.models.build import build_model
from deepreg.models.config import HeadConfig, ModelConfig, RegulatorConfig, SequenceConfig

LENGTH, N_REGULATORS = 30, 5


def tiny_model(fusion="tensor", pool="global", regulator_units=(), seed=1, conv_layers=1, **sequence):
    keras.utils.set_random_seed(seed)
    spec = dict(conv_layers=conv_layers, filters=(6,), filter_width=(5,), pool=(pool,))
    spec.update(sequence)
    config = ModelConfig(sequence=SequenceConfig(**spec), regulators=RegulatorConfig(dense_units=regulator_units),
                         fusion=fusion, head=HeadConfig(dense_units=(8, 8)))
    model = build_model(config, LENGTH, N_REGULATORS)
    if spec.get("feature_norm"):  # moving statistics as after training, not the identity of a new layer
        norm = model.get_layer("sequence_tower").get_layer("sequence_feature_norm")
        rng = np.random.default_rng(seed)
        norm.moving_mean.assign(rng.normal(0.5, 0.2, norm.moving_mean.shape).astype(np.float32))
        norm.moving_variance.assign(rng.uniform(0.05, 0.5, norm.moving_variance.shape).astype(np.float32))
    # spread the biases so that ReLUs switch between inputs and references
    for layer in model.layers + [l for sub in model.layers if hasattr(sub, "layers") for l in sub.layers]:
        if getattr(layer, "bias", None) is not None and hasattr(layer.bias, "assign"):
            layer.bias.assign(np.random.default_rng(seed).normal(0, 0.3, layer.bias.shape).astype(np.float32))
    return model


def inputs(n_genes=3, n_conditions=4, seed=0):
    rng = np.random.default_rng(seed)
    sequences = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (n_genes, LENGTH))]
    sequences[0, :4] = 0  # N padding at the distal end
    regulators = rng.normal(0, 1, (n_conditions, N_REGULATORS)).astype(np.float32)
    return sequences, regulators


def predict(model, sequences, regulators):
    return np.asarray(model.predict_on_batch({"sequence": np.asarray(sequences, np.float32), "regulators": regulators}))


@pytest.mark.parametrize("fusion,pool,units,feature_norm", [
    ("tensor", "global", (), False), ("concat", "3", (6,), False), ("tensor", "none", (4,), False),
    ("concat", "global", (), False), ("tensor", "global", (), True), ("concat", "3", (6,), True)])
@pytest.mark.parametrize("reference", ["zero", "mean"])
def test_regulator_scores_sum_to_delta(fusion, pool, units, feature_norm, reference):
    model = tiny_model(fusion, pool, units, feature_norm=feature_norm)
    sequences, regulators = inputs()
    scores = deeplift.regulator_scores(model, sequences, regulators, reference=reference)
    t0 = deeplift.regulator_reference(regulators, reference)
    delta = predict(model, sequences, regulators) - predict(model, sequences, np.repeat(t0[None], len(regulators), 0))
    assert scores.shape == (3, 4, N_REGULATORS)
    np.testing.assert_allclose(scores.sum(axis=-1), delta, atol=2e-5)
    sums = deeplift.regulator_scores(model, sequences, regulators, reference=reference, reduce="abs_sum", block_genes=2)
    np.testing.assert_allclose(sums.per_gene_abs, np.abs(scores).sum(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sums.per_condition_abs, np.abs(scores).sum(axis=0), rtol=1e-5, atol=1e-6)
    assert sums.delta_error < 2e-5


@pytest.mark.parametrize("fusion", ["tensor", "concat"])
def test_sequence_scores_sum_to_delta_without_max_pool(fusion):
    """Max pools route multipliers as the deeplift package does (not exact); without them the sum is exact."""
    model = tiny_model(fusion, "none", (4,))
    sequences, regulators = inputs()
    result = deeplift.sequence_scores(model, sequences, regulators, n_shuffles=3, reduce="none")
    assert result.scores.shape == (3, 4, LENGTH, 4)
    np.testing.assert_allclose(result.scores.sum(axis=(2, 3)), result.delta, atol=5e-5)
    summed = deeplift.sequence_scores(model, sequences, regulators, n_shuffles=3, reduce="sum")
    np.testing.assert_allclose(summed.scores, result.scores.sum(axis=1), atol=1e-5)
    # scores sit on the observed bases only; padding (N) positions get nothing
    assert np.all(summed.scores[0, :4] == 0)
    assert np.all((summed.scores != 0).sum(axis=-1) <= 1)


def test_gradient_rule_is_gradient_times_input():
    model = tiny_model("tensor", "global", (4,))
    sequences, regulators = inputs(n_genes=1)
    scores = deeplift.regulator_scores(model, sequences, regulators, rule="gradient")
    seq = tf.constant(sequences.astype(np.float32))
    regs = tf.Variable(regulators)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(model({"sequence": seq, "regulators": regs}))
    expected = (tape.gradient(out, regs).numpy() * regulators)[None]
    np.testing.assert_allclose(scores, expected, atol=1e-5)

    seq_var = tf.Variable(sequences.astype(np.float32))
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(model({"sequence": seq_var, "regulators": tf.constant(regulators)}))
    expected = tape.gradient(out, seq_var).numpy() * sequences
    result = deeplift.sequence_scores(model, sequences, regulators, rule="gradient", reduce="sum")
    np.testing.assert_allclose(result.scores, expected, atol=1e-5)


def test_dinucleotide_shuffle_keeps_counts_and_padding():
    sequences, _ = inputs(n_genes=2)
    shuffles = dinucleotide_shuffle(sequences[0], 5, rng=0)
    assert shuffles.shape == (5,) + sequences[0].shape
    for shuffle in shuffles:
        np.testing.assert_array_equal(dinucleotide_counts(shuffle), dinucleotide_counts(sequences[0]))
        assert np.all(shuffle[:4] == 0)
    assert not all(np.array_equal(s, sequences[0]) for s in shuffles)


def test_unsupported_models_are_refused():
    keras.utils.set_random_seed(0)
    config = ModelConfig(name="rnn", sequence=SequenceConfig(filters=(4,), filter_width=(5,), pool=("3",),
                                                             recurrent="gru", recurrent_units=4),
                         fusion="concat", head=HeadConfig(dense_units=(8,)))
    model = build_model(config, LENGTH, N_REGULATORS)
    with pytest.raises(DeepRegError, match="not supported"):
        read_network(model)


@pytest.mark.parametrize("fusion,units,pool", [("tensor", (), "global"), ("concat", (6,), "3")])
def test_agrees_with_the_deeplift_package(fusion, units, pool):
    """The authors' package, in its own TF1 process, with the graph built from the model's weights."""
    from deepreg.attribution._deeplift_reference import reference_scores

    model = tiny_model(fusion, pool, units)
    sequences, regulators = inputs()
    references = np.stack([dinucleotide_shuffle(s, 2, rng=i) for i, s in enumerate(sequences)])
    expected = reference_scores(model, sequences, references, regulators, "mean", timeout=300)
    native = deeplift.regulator_scores(model, sequences, regulators, reference="mean")
    np.testing.assert_allclose(native, expected["regulators"], atol=1e-4)
    assert np.abs(native).max() > 1e-3
    contributions = deeplift.sequence_contributions(model, sequences, references, regulators)
    np.testing.assert_allclose(contributions, expected["sequences"], atol=1e-4)
    assert np.abs(contributions).max() > 1e-3
