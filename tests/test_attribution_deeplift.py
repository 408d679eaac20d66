"""Native DeepLIFT: summation to delta, gradients, and agreement with the authors' deeplift package."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deepreg.attribution import deeplift
from deepreg.attribution._network import read_network
from deepreg.attribution.ersatz import dinucleotide_counts, dinucleotide_shuffle
from deepreg.attribution.predict import predict as attribution_predict
from deepreg.errors import DeepRegError
from deepreg.models.build import build_model, model_input_names
from deepreg.models.config import HeadConfig, ModelConfig, RegulatorConfig, SequenceConfig

LENGTH, N_REGULATORS = 30, 5
# Models with gene / condition inputs are built for a dataset of 6 genes x 5 conditions; the test
# promoters and regulator vectors are these rows and columns of it.
DATASET_GENES, DATASET_CONDITIONS = 6, 5
GENE_INDEX, CONDITION_INDEX = np.array([4, 0, 2]), np.array([3, 1, 4, 0])
# Bilinear models (rank 4): with head [] or [8], the per-gene embedding, the baseline offset, the
# regulator skip path and k-mer counts (k = 3) beside the conv features or alone.
BILINEAR_SKIP = dict(head=(8,), gene_embedding=True, offset="best", skip=True)
BILINEAR_KMER = dict(head=(), kmer=3)


def tiny_model(fusion="tensor", pool="global", regulator_units=(), seed=1, conv_layers=1, head=(8, 8), skip=False,
               layer_norm=False, gene_embedding=False, offset="none", task="regression", **sequence):
    keras.utils.set_random_seed(seed)
    spec = dict(conv_layers=conv_layers, filters=(6,), filter_width=(5,), pool=(pool,))
    spec.update(sequence)
    config = ModelConfig(sequence=SequenceConfig(**spec),
                         regulators=RegulatorConfig(dense_units=regulator_units, skip=skip, layer_norm=layer_norm),
                         fusion=fusion, head=HeadConfig(dense_units=head), rank=4, gene_embedding=gene_embedding,
                         offset=offset, task=task)
    sizes = dict(n_genes=DATASET_GENES, n_conditions=DATASET_CONDITIONS) if config.uses_gene_index else {}
    model = build_model(config, LENGTH, N_REGULATORS, **sizes)
    rng = np.random.default_rng(seed)
    tower = model.get_layer("sequence_tower")
    for name in ("sequence_feature_norm", "kmer_norm"):  # moving statistics as after training
        if any(layer.name == name for layer in tower.layers):
            norm = tower.get_layer(name)
            norm.moving_mean.assign(rng.normal(0.5, 0.2, norm.moving_mean.shape).astype(np.float32))
            norm.moving_variance.assign(rng.uniform(0.05, 0.5, norm.moving_variance.shape).astype(np.float32))
    # the embedding, the baseline table and (with an offset) the output kernel may start at zero: give them values
    zeros = [getattr(model.get_layer("fusion"), name, None) for name in ("embedding", "embedding_offset")]
    zeros += [model.get_layer("baseline_offset").table] if offset != "none" else []
    zeros += [model.get_layer("network_score").kernel] if any(l.name == "network_score" for l in model.layers) else []
    for weight in zeros + [model.get_layer("output").kernel]:
        if weight is not None and not np.any(weight.numpy()):
            weight.assign(rng.normal(0, 0.5, weight.shape).astype(np.float32))
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


def feed(model, sequences, regulators, genes=GENE_INDEX, conditions=CONDITION_INDEX):
    """Model inputs; models with gene / condition inputs get the first rows of `genes` and `conditions`."""
    values = {"sequence": tf.constant(np.asarray(sequences, np.float32)), "regulators": tf.constant(regulators)}
    if "gene" in model_input_names(model):
        values.update(gene=tf.constant(genes[:len(sequences)], tf.int32),
                      condition=tf.constant(conditions[:len(regulators)], tf.int32))
    return values


def predict(model, sequences, regulators, **indices):
    return np.asarray(model.predict_on_batch(feed(model, sequences, regulators, **indices)))


@pytest.mark.parametrize("fusion,pool,units,options", [
    ("tensor", "global", (), {}), ("concat", "3", (6,), {}), ("tensor", "none", (4,), {}),
    ("concat", "global", (), {}), ("tensor", "global", (), {"feature_norm": True}),
    ("concat", "3", (6,), {"feature_norm": True}), ("tensor", "global", (4,), {"skip": True}),
    ("bilinear", "global", (), {"head": ()}), ("bilinear", "3", (6,), BILINEAR_SKIP),
    ("bilinear", "none", (4,), {**BILINEAR_KMER, "head": (8,), "feature_norm": True}),
    ("bilinear", "global", (), {**BILINEAR_KMER, "kmer_proximal": (15,)}),
    ("bilinear", "global", (6,), {**BILINEAR_KMER, "gene_embedding": True, "conv_layers": 0})])
@pytest.mark.parametrize("reference", ["zero", "mean"])
def test_regulator_scores_sum_to_delta(fusion, pool, units, options, reference):
    model = tiny_model(fusion, pool, units, **options)
    sequences, regulators = inputs()
    scores = deeplift.regulator_scores(model, sequences, regulators, reference=reference, gene_index=GENE_INDEX)
    t0 = deeplift.regulator_reference(regulators, reference)
    delta = predict(model, sequences, regulators) - predict(model, sequences, np.repeat(t0[None], len(regulators), 0))
    assert scores.shape == (3, 4, N_REGULATORS)
    np.testing.assert_allclose(scores.sum(axis=-1), delta, atol=2e-5)
    assert np.abs(delta).max() > 1e-3
    sums = deeplift.regulator_scores(model, sequences, regulators, reference=reference, reduce="abs_sum", block_genes=2,
                                     gene_index=GENE_INDEX)
    np.testing.assert_allclose(sums.per_gene_abs, np.abs(scores).sum(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sums.per_condition_abs, np.abs(scores).sum(axis=0), rtol=1e-5, atol=1e-6)
    assert sums.delta_error < 2e-5


def test_regulator_scores_of_a_3_class_model_on_a_baseline_sum_to_the_change_in_up_minus_down():
    """The 3-class bilinear model reads network score + baseline through its output layer: the scores sum
    to the change of the up - down logit, which the baseline (the same at input and reference) leaves alone."""
    model = tiny_model("bilinear", "global", (), head=(), offset="best", task="classification")
    sequences, regulators = inputs()
    scores = deeplift.regulator_scores(model, sequences, regulators, target="up_minus_down", gene_index=GENE_INDEX)
    score = keras.Model(model.inputs, model.get_layer("baseline_offset").output)
    output = model.get_layer("output")
    weights = output.kernel.numpy()[0, 2] - output.kernel.numpy()[0, 0]

    def up_minus_down(values):
        return np.asarray(score.predict_on_batch(feed(model, sequences, values)))[..., 0] * weights

    delta = up_minus_down(regulators) - up_minus_down(np.zeros_like(regulators))
    np.testing.assert_allclose(scores.sum(axis=-1), delta, atol=2e-5)
    assert np.abs(delta).max() > 1e-3


@pytest.mark.parametrize("fusion,options", [("tensor", {}), ("concat", {}), ("bilinear", BILINEAR_SKIP),
                                            ("bilinear", BILINEAR_KMER)])
def test_sequence_scores_sum_to_delta_without_max_pool(fusion, options):
    """Max pools route multipliers as the deeplift package does (not exact); without them the sum is exact.

    With k-mer counts, the counts are held at the promoter's: delta is f(x, k(x)) - f(x0, k(x)).
    """
    model = tiny_model(fusion, "none", (4,), **options)
    sequences, regulators = inputs()
    result = deeplift.sequence_scores(model, sequences, regulators, n_shuffles=3, reduce="none", gene_index=GENE_INDEX)
    assert result.scores.shape == (3, 4, LENGTH, 4)
    np.testing.assert_allclose(result.scores.sum(axis=(2, 3)), result.delta, atol=5e-5)
    assert np.abs(result.delta).max() > 1e-3
    summed = deeplift.sequence_scores(model, sequences, regulators, n_shuffles=3, reduce="sum", gene_index=GENE_INDEX)
    np.testing.assert_allclose(summed.scores, result.scores.sum(axis=1), atol=1e-5)
    # scores sit on the observed bases only; padding (N) positions get nothing
    assert np.all(summed.scores[0, :4] == 0)
    assert np.all((summed.scores != 0).sum(axis=-1) <= 1)


@pytest.mark.parametrize("fusion,units,options", [
    ("tensor", (4,), {}), ("bilinear", (6,), {**BILINEAR_SKIP, "kmer": 3})])
def test_gradient_rule_is_gradient_times_input(fusion, units, options):
    """Against Keras' own gradients (k-mer counts have none: they carry no gradient there either)."""
    model = tiny_model(fusion, "global", units, **options)
    sequences, regulators = inputs(n_genes=1)
    scores = deeplift.regulator_scores(model, sequences, regulators, rule="gradient", gene_index=GENE_INDEX[:1])
    values = feed(model, sequences, regulators)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([values["sequence"], values["regulators"]])
        out = tf.reduce_sum(model(values))
    expected = (tape.gradient(out, values["regulators"]).numpy() * regulators)[None]
    np.testing.assert_allclose(scores, expected, atol=1e-5)

    expected = tape.gradient(out, values["sequence"]).numpy() * sequences
    result = deeplift.sequence_scores(model, sequences, regulators, rule="gradient", reduce="sum",
                                      gene_index=GENE_INDEX[:1])
    np.testing.assert_allclose(result.scores, expected, atol=1e-5)


def test_predict_feeds_gene_and_condition_indices():
    model = tiny_model("bilinear", "3", (6,), **BILINEAR_SKIP)
    sequences, regulators = inputs()
    expected = predict(model, sequences, regulators)
    for promoters in (sequences, sequences.astype(np.float32)):  # one-hot and float inputs
        found = attribution_predict(model, promoters, regulators, gene_index=GENE_INDEX,
                                    condition_index=CONDITION_INDEX, block_genes=2, block_conditions=3)
        np.testing.assert_allclose(found, expected, atol=1e-5)
    by_default = predict(model, sequences, regulators, genes=np.arange(3), conditions=np.arange(4))
    np.testing.assert_allclose(attribution_predict(model, sequences, regulators), by_default, atol=1e-5)
    with pytest.raises(DeepRegError, match="gene_index has 2 entries for 3 promoters"):
        attribution_predict(model, sequences, regulators, gene_index=GENE_INDEX[:2])


def test_dinucleotide_shuffle_keeps_counts_and_padding():
    sequences, _ = inputs(n_genes=2)
    shuffles = dinucleotide_shuffle(sequences[0], 5, rng=0)
    assert shuffles.shape == (5,) + sequences[0].shape
    for shuffle in shuffles:
        np.testing.assert_array_equal(dinucleotide_counts(shuffle), dinucleotide_counts(sequences[0]))
        assert np.all(shuffle[:4] == 0)
    assert not all(np.array_equal(s, sequences[0]) for s in shuffles)


def _recurrent_model():
    keras.utils.set_random_seed(0)
    config = ModelConfig(name="rnn", sequence=SequenceConfig(filters=(4,), filter_width=(5,), pool=("3",),
                                                             recurrent="gru", recurrent_units=4),
                         fusion="concat", head=HeadConfig(dense_units=(8,)))
    return build_model(config, LENGTH, N_REGULATORS)


def _sequence_scores(model, gene_index=None):
    return deeplift.sequence_scores(model, *inputs(), n_shuffles=1, gene_index=gene_index)


@pytest.mark.parametrize("make,attribute,match", [
    (_recurrent_model, read_network, "not supported"),
    (lambda: tiny_model("bilinear", regulator_units=(6,), head=(), layer_norm=True), read_network,
     "model.regulators.layer_norm is not supported"),
    (lambda: tiny_model("bilinear", head=(), kmer=3, conv_layers=0), _sequence_scores, "k-mer counts alone"),
    (lambda: tiny_model("bilinear", head=(), gene_embedding=True), lambda model: _sequence_scores(model, [0, 6, 1]),
     r"gene indices must lie in 0\.\.5")])
def test_unsupported_models_are_refused(make, attribute, match):
    with pytest.raises(DeepRegError, match=match):
        attribute(make())


@pytest.mark.parametrize("fusion,units,pool,options", [
    ("tensor", (), "global", {}), ("concat", (6,), "3", {}), ("bilinear", (6,), "3", {**BILINEAR_SKIP, "kmer": 3})])
def test_agrees_with_the_deeplift_package(fusion, units, pool, options):
    """The authors' package, in its own TF1 process, with the graph built from the model's weights."""
    from deepreg.attribution._deeplift_reference import reference_scores

    model = tiny_model(fusion, pool, units, **options)
    sequences, regulators = inputs()
    references = np.stack([dinucleotide_shuffle(s, 2, rng=i) for i, s in enumerate(sequences)])
    expected = reference_scores(model, sequences, references, regulators, "mean", gene_index=GENE_INDEX, timeout=300)
    native = deeplift.regulator_scores(model, sequences, regulators, reference="mean", gene_index=GENE_INDEX)
    np.testing.assert_allclose(native, expected["regulators"], atol=1e-4)
    assert np.abs(native).max() > 1e-3
    contributions = deeplift.sequence_contributions(model, sequences, references, regulators, gene_index=GENE_INDEX)
    np.testing.assert_allclose(contributions, expected["sequences"], atol=1e-4)
    assert np.abs(contributions).max() > 1e-3
