"""The architecture space: configs refuse clashes, round-trip, and both forms compute one function.

The factorised block model and the naive pair model are built on the same weights; their outputs
and the gradients of every weight must agree to 1e-5 for every fusion.
"""

from pathlib import Path

import keras
import numpy as np
import pytest

from deepreg.errors import DeepRegError
from deepreg.models.build import build_models
from deepreg.models.config import HeadConfig, ModelConfig, RegulatorConfig, SequenceConfig
from deepreg.models.layers import MergeStrands, RandomReverseComplement, SequenceConv

CONFIGS = sorted((Path(__file__).parents[1] / "configs" / "models").glob("*.yaml"))
LENGTH, N_REGULATORS, N_GENES, N_CONDITIONS = 48, 5, 3, 4


def small(**sequence) -> ModelConfig:
    """A small model; `sequence` overrides SequenceConfig fields."""
    fields = {"filters": (6,), "filter_width": (5,), **sequence}
    return ModelConfig(sequence=SequenceConfig(**fields), head=HeadConfig(dense_units=(8, 7), dropout=0.0))


def block_inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    sequences = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (N_GENES, LENGTH))]
    regulators = rng.normal(size=(N_CONDITIONS, N_REGULATORS)).astype(np.float32)
    return sequences, regulators


def pair_inputs(sequences, regulators):
    genes, conditions = np.meshgrid(np.arange(len(sequences)), np.arange(len(regulators)), indexing="ij")
    return {"sequence": sequences[genes.ravel()], "regulators": regulators[conditions.ravel()]}


def outputs_and_gradients(model, inputs, weights):
    """Outputs and d(sum(outputs * weights))/d(every trainable weight), in inference mode."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        outputs = model(inputs, training=False)
        objective = tf.reduce_sum(tf.reshape(outputs, [-1]) * weights)
    gradients = tape.gradient(objective, model.trainable_variables)
    return np.asarray(outputs), [np.asarray(g) for g in gradients]


def assert_forms_agree(config: ModelConfig):
    keras.utils.set_random_seed(1)
    block, pair = build_models(config, LENGTH, N_REGULATORS)
    sequences, regulators = block_inputs()
    n_outputs = N_GENES * N_CONDITIONS * config.n_outputs
    weights = np.random.default_rng(2).normal(size=n_outputs).astype(np.float32)
    block_out, block_grads = outputs_and_gradients(block, {"sequence": sequences, "regulators": regulators}, weights)
    pair_out, pair_grads = outputs_and_gradients(pair, pair_inputs(sequences, regulators), weights)
    assert block_out.shape[:2] == (N_GENES, N_CONDITIONS)
    np.testing.assert_allclose(block_out.reshape(-1), pair_out.reshape(-1), rtol=1e-5, atol=1e-5)
    assert [v.path for v in block.trainable_variables] == [v.path for v in pair.trainable_variables]
    for variable, from_block, from_pair in zip(block.trainable_variables, block_grads, pair_grads):
        scale = max(1.0, float(np.abs(from_pair).max()))
        np.testing.assert_allclose(from_block, from_pair, rtol=1e-5, atol=1e-5 * scale, err_msg=variable.path)


# ----------------------------------------------------------------------------------------------
# naive vs factorised


@pytest.mark.parametrize("contraction", ["per_gene", "per_condition", "auto"])
def test_tensor_product_block_equals_pairs(contraction):
    assert_forms_agree(small().with_updates({"contraction": contraction, "l2": 1e-3}))


def test_concatenation_block_equals_pairs():
    config = small(pool=("4",), pool_stride=(3,)).with_updates(
        {"fusion": "concat", "regulators.dense_units": [6], "task": "classification"})
    assert_forms_agree(config)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_per_position_recurrent_block_equals_pairs(cell):
    config = small(pool=("6",), recurrent=cell, recurrent_units=5).with_updates(
        {"fusion": "concat_rnn", "regulators.dense_units": [4]})
    assert_forms_agree(config)


def test_deep_mirrored_batch_norm_tower_with_sequence_recurrent_layer_block_equals_pairs():
    config = small(conv_layers=2, filters=(4, 3), filter_width=(5, 3), pool=("2", "none"), batch_norm=True,
                   reverse_complement="mirrored", recurrent="gru", recurrent_units=4, dense_units=(5,),
                   padding="same")
    assert_forms_agree(config.with_updates({"fusion": "concat"}))


# ----------------------------------------------------------------------------------------------
# sequence layers


def reference_conv(layer: SequenceConv, inputs, pool, stride=None):
    """Keras Conv1D (+ pool) with the SequenceConv's weights: the definition the fused layer must match."""
    conv = keras.layers.Conv1D(layer.filters, layer.kernel_size, padding=layer.padding, activation="relu")
    conv.build(inputs.shape)
    conv.set_weights([layer.kernel.numpy(), layer.bias.numpy()])
    outputs = conv(inputs)
    if pool == "global":
        outputs = keras.layers.GlobalMaxPooling1D()(outputs)
    elif pool != "none":
        outputs = keras.layers.MaxPooling1D(pool, strides=stride)(outputs)
    return outputs, conv.kernel


@pytest.mark.parametrize("pool,padding", [("global", "valid"), ("global", "same"), (5, "valid"), ("none", "same")])
def test_fused_conv_pool_equals_conv_then_pool_with_gradients(pool, padding):
    import tensorflow as tf

    inputs = tf.constant(np.random.default_rng(0).normal(size=(3, 30, 4)).astype(np.float32))
    layer = SequenceConv(7, 6, padding=padding, activation="relu", pool=pool, pool_stride=3 if pool == 5 else None)
    layer.build(inputs.shape)
    layer.bias.assign(np.linspace(-0.2, 0.2, 7).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(inputs)
        fused = layer(inputs)
        expected, reference_kernel = reference_conv(layer, inputs, pool, 3)
        objectives = tf.reduce_sum(fused ** 2), tf.reduce_sum(expected ** 2)
    np.testing.assert_allclose(fused, expected, rtol=1e-5, atol=1e-6)
    for target, reference_target in ((inputs, inputs), (layer.kernel, reference_kernel)):
        np.testing.assert_allclose(tape.gradient(objectives[0], target), tape.gradient(objectives[1], reference_target),
                                   rtol=1e-5, atol=1e-5)


def reverse_complement(x):
    return np.asarray(x)[:, ::-1, ::-1]


def test_mirrored_conv_is_reverse_complement_equivariant_and_merged_strands_invariant():
    sequences, _ = block_inputs()
    first = SequenceConv(5, 7, activation="relu", mirrored=True)
    second = SequenceConv(3, 4, activation="relu", mirrored=True)
    forward = second(first(sequences))
    backward = second(first(reverse_complement(sequences)))
    assert forward.shape[-1] == 6
    np.testing.assert_allclose(reverse_complement(forward), backward, rtol=1e-5, atol=1e-6)
    merged = MergeStrands()
    np.testing.assert_allclose(np.max(merged(forward), axis=1), np.max(merged(backward), axis=1), rtol=1e-5)


def test_mirrored_model_predicts_the_same_for_a_promoter_and_its_reverse_complement():
    config = small(conv_layers=2, filters=(4, 3), filter_width=(5, 3), pool=("none", "global"),
                   batch_norm=True, reverse_complement="mirrored")
    block, _ = build_models(config, LENGTH, N_REGULATORS)
    sequences, regulators = block_inputs()
    forward = block({"sequence": sequences, "regulators": regulators})
    backward = block({"sequence": np.ascontiguousarray(reverse_complement(sequences)), "regulators": regulators})
    np.testing.assert_allclose(forward, backward, rtol=1e-5, atol=1e-6)


def test_reverse_complement_augmentation_flips_some_promoters_only_while_training():
    sequences = np.tile(block_inputs()[0], (8, 1, 1))
    layer = RandomReverseComplement(seed=3)
    np.testing.assert_array_equal(layer(sequences, training=False), sequences)
    augmented = np.asarray(layer(sequences, training=True))
    flipped = [np.array_equal(a, reverse_complement(s[None])[0]) for a, s in zip(augmented, sequences)]
    kept = [np.array_equal(a, s) for a, s in zip(augmented, sequences)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


# ----------------------------------------------------------------------------------------------
# configs


def test_every_named_config_reads_round_trips_through_params_and_builds_the_same_model():
    assert {path.stem for path in CONFIGS} >= {
        "basset", "reduced-cnn-100", "small-filter-19", "single-layer-tensor", "single-layer-maxpool", "concat",
        "concat-lstm", "concat-gru-15", "concat-gru-100", "concat-gru-491", "paper-final"}
    for path in CONFIGS:
        config = ModelConfig.from_yaml(path)
        assert config.name == path.stem
        config.validate_for(1000)
        restored = ModelConfig.from_params(config.to_params(prefix="model."), prefix="model.")
        assert restored == config
    tiny = ModelConfig.from_yaml(CONFIGS[0]).with_updates(
        {"sequence.filters": [4, 3, 3], "sequence.dense_units": [6], "regulators.dense_units": [5],
         "head.dense_units": [6, 6]})
    built = [build_models(c, 120, N_REGULATORS)[0] for c in (tiny, ModelConfig.from_params(tiny.to_params()))]
    assert built[0].to_json() == built[1].to_json()
    assert built[0].count_params() == built[1].count_params()


@pytest.mark.parametrize("updates,keys", [
    ({"sequence.recurrent": "lstm"}, ["model.sequence.recurrent", "model.sequence.pool"]),
    ({"sequence.conv_layers": 2, "sequence.pool": ["global", "none"]}, ["model.sequence.pool", "conv layer 2"]),
    ({"fusion": "concat_rnn", "sequence.pool": ["4"]}, ["model.fusion", "model.sequence.recurrent"]),
    ({"fusion": "concat_rnn", "sequence.pool": ["4"], "sequence.recurrent": "gru", "sequence.dense_units": [8]},
     ["model.fusion", "model.sequence.dense_units"]),
    ({"sequence.conv_layers": 0, "sequence.reverse_complement": "mirrored"},
     ["model.sequence.reverse_complement", "model.sequence.conv_layers"]),
    ({"sequence.filters": [8, 8]}, ["model.sequence.filters", "model.sequence.conv_layers"]),
    ({"head.dense_units": []}, ["model.head.dense_units", "model.fusion"]),
    ({"sequence.conv_layers": 4}, ["model.sequence.conv_layers"]),
    ({"sequence.reverse_complement": "both"}, ["sequence.reverse_complement", "'mirrored'"]),
])
def test_clashing_keys_are_refused_when_the_config_is_read(updates, keys):
    with pytest.raises(DeepRegError) as error:
        ModelConfig().with_updates(updates)
    for key in keys:
        assert key in str(error.value)


@pytest.mark.parametrize("updates,length,keys", [
    ({"sequence.pool": ["491"]}, 300, ["model.sequence.pool = 491", "data.sequence_length = 300"]),
    ({"sequence.filter_width": [100]}, 60, ["model.sequence.filter_width = 100", "data.sequence_length = 60"]),
    ({"sequence.conv_layers": 2, "sequence.pool": ["100", "6"], "sequence.filter_width": [19, 5]}, 1000,
     ["model.sequence.pool = 6 (layer 2)", "only 5 positions"]),
])
def test_pool_factors_and_filter_widths_beyond_the_positions_are_refused(updates, length, keys):
    config = ModelConfig().with_updates(updates)
    with pytest.raises(DeepRegError) as error:
        config.validate_for(length)
    for key in keys:
        assert key in str(error.value)
    with pytest.raises(DeepRegError):
        build_models(config, length, N_REGULATORS)


def test_a_zero_layer_tower_reads_the_raw_promoter():
    config = ModelConfig(sequence=SequenceConfig(conv_layers=0, dense_units=(6,)), fusion="concat",
                         head=HeadConfig(dense_units=(5,)), regulators=RegulatorConfig(dense_units=(3,)))
    block, _ = build_models(config, 20, N_REGULATORS)
    assert block.get_layer("sequence_tower").get_layer("flatten").output.shape[-1] == 80


def test_feature_norm_standardises_gene_features_and_both_forms_agree():
    config = small(feature_norm=True)
    assert_forms_agree(config)
    block, _ = build_models(config, LENGTH, N_REGULATORS)
    tower = block.get_layer("sequence_tower")
    sequences = np.eye(4, dtype=np.float32)[np.random.default_rng(5).integers(0, 4, (64, LENGTH))]
    features = np.asarray(tower(sequences, training=True))
    np.testing.assert_allclose(features.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(features.std(axis=0), 1, atol=0.05)


def test_feature_norm_is_refused_where_the_fusion_reads_positions():
    with pytest.raises(DeepRegError, match="model.sequence.feature_norm"):
        small(pool=("6",), recurrent="gru", recurrent_units=3, feature_norm=True).with_updates({"fusion": "concat_rnn"})


def test_saved_models_with_every_custom_layer_load_in_safe_mode(tmp_path):
    configs = [
        small(conv_layers=2, filters=(4, 3), filter_width=(5, 3), pool=("2", "global"), batch_norm=True,
              reverse_complement="mirrored"),
        small(pool=("6",), recurrent="lstm", recurrent_units=3, reverse_complement="augment").with_updates(
            {"fusion": "concat_rnn"}),
    ]
    sequences, regulators = block_inputs()
    for index, config in enumerate(configs):
        block, _ = build_models(config, LENGTH, N_REGULATORS)
        path = tmp_path / f"model{index}.keras"
        block.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        inputs = {"sequence": sequences, "regulators": regulators}
        np.testing.assert_allclose(loaded(inputs), block(inputs), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("nesterov", [False, True])
def test_in_place_sgd_makes_the_updates_of_keras_sgd(nesterov):
    from deepreg.training.optimizers import InPlaceSGD

    start = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    weights = [keras.Variable(start), keras.Variable(start)]
    optimizers = [keras.optimizers.SGD(0.1, momentum=0.5, nesterov=nesterov),
                  InPlaceSGD(0.1, momentum=0.5, nesterov=nesterov)]
    for step in range(3):
        gradient = np.random.default_rng(step).normal(size=(4, 3)).astype(np.float32)
        for weight, optimizer in zip(weights, optimizers):
            optimizer.apply_gradients([(gradient, weight)])
    np.testing.assert_allclose(weights[1].numpy(), weights[0].numpy(), rtol=1e-6, atol=1e-7)


def test_mixed_bfloat16_precision_keeps_float32_weights_and_outputs_close_to_float32():
    config = small(pool=("4",)).with_updates({"fusion": "concat"})
    sequences, regulators = block_inputs()
    inputs = {"sequence": sequences, "regulators": regulators}
    keras.utils.set_random_seed(5)
    reference, _ = build_models(config, LENGTH, N_REGULATORS)
    keras.utils.set_random_seed(5)
    mixed, mixed_pairs = build_models(config.with_updates({"precision": "mixed_bfloat16"}), LENGTH, N_REGULATORS)
    assert keras.config.dtype_policy().name == "float32"
    assert all(v.dtype == "float32" for v in mixed.weights)
    assert mixed(inputs).dtype == "float32"
    np.testing.assert_allclose(mixed(inputs), reference(inputs), rtol=0.05, atol=0.05)
    np.testing.assert_allclose(np.reshape(mixed_pairs(pair_inputs(sequences, regulators)), (N_GENES, N_CONDITIONS)),
                               mixed(inputs), rtol=0.05, atol=0.05)


def test_multiply_adds_count_the_bilinear_contraction_and_the_materialised_outer_product():
    from deepreg.models.cost import block_step_cost, pair_step_cost

    config = small(filters=(6,)).with_updates({"head.dense_units": [8, 7]})
    block, pair = build_models(config, LENGTH, N_REGULATORS)
    width_f, width_r, units = 6, N_REGULATORS, 8
    per_condition = block_step_cost(block, 100, 3)
    assert per_condition.forward["fusion"] == 3 * width_r * width_f * units + 300 * width_f * units
    per_gene = block_step_cost(block, 2, 50)
    assert per_gene.forward["fusion"] == 2 * width_f * width_r * units + 100 * width_r * units
    naive = pair_step_cost(pair, 300)
    assert naive.forward["fusion"] == 300 * width_f * width_r * units
    assert naive.forward["head"] == per_condition.forward["head"] == 300 * (8 * 7 + 7)
    assert naive.forward["sequence tower"] == 3 * per_condition.forward["sequence tower"]  # 300 pairs, 100 genes


def test_multiply_adds_count_the_two_tower_bilinear_fusion_and_grow_its_block_advantage():
    from deepreg.models.cost import block_step_cost, pair_step_cost

    config = small(filters=(6,)).with_updates({"fusion": "bilinear", "rank": 4, "head.dense_units": [],
                                               "gene_embedding": True, "offset": "additive"})
    block, pair = build_models(config, LENGTH, N_REGULATORS, n_genes=N_GENES, n_conditions=N_CONDITIONS)
    genes, conditions, width_f, width_r, rank = 10, 4, 6, N_REGULATORS, 4
    cost = block_step_cost(block, genes, conditions)
    fusion = genes * width_f * (rank + 1) + conditions * width_r * (rank + 1) + genes * conditions * rank
    assert cost.forward["fusion"] == fusion == 560
    # conv 44 positions x 20-wide windows x 6 filters per gene (backward: one window per filter, data
    # input); fusion backward without the raw regulators' input gradient; output layer 1 x 1 per pair;
    # the gene embedding and the baseline table add nothing
    assert cost.total == 10 * (44 * 20 * 6 + 20 * 6) + (560 + 2 * 300 + 100 + 2 * 160) + 3 * 40 == 55_700

    def advantage(n_genes, n_conditions):
        return (pair_step_cost(pair, n_genes * n_conditions).total
                / block_step_cost(block, n_genes, n_conditions).total)

    ratios = [advantage(*shape) for shape in ((1, 1), (4, 4), (16, 32), (128, 173))]
    assert ratios[0] == 1.0
    assert all(smaller < larger for smaller, larger in zip(ratios, ratios[1:]))


def test_multiply_adds_count_the_interaction_features_and_a_kmer_tower_as_trained_input():
    from deepreg.models.cost import block_step_cost

    config = small(conv_layers=0, kmer=3, dense_units=(5,)).with_updates(
        {"fusion": "bilinear", "rank": 4, "head.dense_units": [8], "regulators.dense_units": [3]})
    block, _ = build_models(config, LENGTH, N_REGULATORS)
    cost = block_step_cost(block, 10, 4)
    # 32 canonical 3-mers into Dense 5; the batch-norm before it is trained, so its input gradient counts
    assert cost.forward["sequence tower"] == 10 * 32 * 5 and cost.backward["sequence tower"] == 2 * 10 * 32 * 5
    assert cost.forward["fusion"] == 10 * 5 * 5 + 4 * 3 * 5 + 2 * 40 * 4
    assert cost.backward["fusion"] == 2 * cost.forward["fusion"]
    assert cost.forward["head"] == 40 * ((1 + 4) * 8 + 8)


def test_pair_batches_cover_each_training_pair_once_with_its_own_promoter_and_regulators():
    from deepreg.data.batches import PairBatches

    rng = np.random.default_rng(0)
    sequences = rng.integers(0, 2, (7, 10, 4)).astype(np.uint8)
    regulators = rng.normal(size=(5, 3)).astype(np.float32)
    labels = rng.normal(size=(7, 5)).astype(np.float32)
    labels[0, 0] = np.nan
    split = rng.integers(0, 3, (7, 5)).astype(np.int8)
    batches = PairBatches(sequences, regulators, labels, split, 0, batch_pairs=4, seed=1)
    seen = []
    for index in range(len(batches)):
        inputs, targets = batches[index]
        genes, conditions = batches.pairs(index)
        np.testing.assert_array_equal(inputs["sequence"], sequences[genes].astype(np.float32))
        np.testing.assert_array_equal(inputs["regulators"], regulators[conditions])
        np.testing.assert_array_equal(targets, labels[genes, conditions])
        seen.extend(zip(genes.tolist(), conditions.tolist()))
    expected = set(zip(*np.nonzero((split == 0) & ~np.isnan(labels))))
    assert len(seen) == len(expected) and set(seen) == {(int(g), int(c)) for g, c in expected}
