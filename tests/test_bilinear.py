"""The bilinear (two-tower) family: block = naive, k-mer counts, baseline offsets, refusals, and a
planted cis x trans rule that only a cis x trans model can learn on held-out genes."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from deepreg.data.splits import TEST, TRAIN, VALIDATION
from deepreg.errors import DeepRegError
from deepreg import baselines
from deepreg.models.build import build_models
from deepreg.models.config import HeadConfig, ModelConfig, ProfileConfig, RegulatorConfig, SequenceConfig
from deepreg.training.config import RunConfig, TrainingConfig
from deepreg.training.offsets import fit_offset, training_folds

LENGTH, N_REGULATORS, N_GENES, N_CONDITIONS = 40, 6, 12, 9

BILINEAR = ModelConfig(
    fusion="bilinear", rank=4,
    sequence=SequenceConfig(filters=(3,), filter_width=(5,), reverse_complement="mirrored", kmer=3,
                            kmer_proximal=(15,), dense_units=(8,)),
    regulators=RegulatorConfig(dense_units=(5,), layer_norm=True, skip=True),
    head=HeadConfig(dense_units=(), dropout=0.0))
VARIANTS = {
    "plain": BILINEAR,
    "embedding": dataclasses.replace(BILINEAR, gene_embedding=True),
    "embedding+offset+head": dataclasses.replace(BILINEAR, gene_embedding=True, offset="additive",
                                                 head=HeadConfig(dense_units=(6,), dropout=0.0)),
    "both embeddings": dataclasses.replace(BILINEAR, gene_embedding=True, condition_embedding=True),
    "condition embedding+offset": dataclasses.replace(BILINEAR, condition_embedding=True, offset="additive"),
    "profile": dataclasses.replace(BILINEAR, gene_embedding=True,
                                   profile=ProfileConfig(dense_units=(7, 5), folds=3)),
    "profile (regulator decoder)+offset": dataclasses.replace(
        BILINEAR, offset="additive", profile=ProfileConfig(dense_units=(6,), folds=4, decoder="regulators")),
    "profile (regulator-profile decoder)": dataclasses.replace(
        BILINEAR, profile=ProfileConfig(dense_units=(6,), folds=3, decoder="regulator_profiles")),
    "classification": dataclasses.replace(BILINEAR, task="classification", gene_embedding=True),
    "classification+offset": dataclasses.replace(BILINEAR, task="classification", gene_embedding=True,
                                                 offset="additive"),
    "classification+profile+offset": dataclasses.replace(BILINEAR, task="classification", offset="additive",
                                                         profile=ProfileConfig(dense_units=(6,), folds=3)),
}


def _block_inputs(rng, n_genes=5, n_conditions=3):
    sequences = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (n_genes, LENGTH))]
    sequences[0, :7] = 0.0  # N bases
    return {"sequence": sequences, "regulators": rng.normal(size=(n_conditions, N_REGULATORS)).astype(np.float32),
            "gene": rng.choice(N_GENES, n_genes, replace=False).astype(np.int32),
            "condition": rng.choice(N_CONDITIONS, n_conditions, replace=False).astype(np.int32)}


def _pairs_of(inputs):
    genes, conditions = np.meshgrid(np.arange(len(inputs["gene"])), np.arange(len(inputs["condition"])),
                                    indexing="ij")
    genes, conditions = genes.ravel(), conditions.ravel()
    return {"sequence": inputs["sequence"][genes], "regulators": inputs["regulators"][conditions],
            "gene": inputs["gene"][genes], "condition": inputs["condition"][conditions]}


def _randomise(model, rng):
    """Non-zero values everywhere (embeddings and the output start at zero when built)."""
    for weight in model.weights:
        if "moving_variance" in weight.path:
            weight.assign(rng.uniform(0.5, 2.0, weight.shape).astype(np.float32))
        else:
            weight.assign(rng.normal(0, 0.3, weight.shape).astype(np.float32))


def _named_inputs(config, inputs):
    if config.uses_gene_index:
        return inputs
    return {key: inputs[key] for key in ("sequence", "regulators")}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_block_and_naive_forms_compute_the_same_function_and_gradients(name):
    config = VARIANTS[name]
    rng = np.random.default_rng(0)
    block, pair = build_models(config, LENGTH, N_REGULATORS, n_genes=N_GENES, n_conditions=N_CONDITIONS)
    _randomise(block, rng)
    if config.profile.enabled:
        _set_profile_tables(block, config, rng)
    inputs = _block_inputs(rng)
    block_inputs, pair_inputs = _named_inputs(config, inputs), _named_inputs(config, _pairs_of(inputs))

    block_out = np.asarray(block(block_inputs, training=False))
    pair_out = np.asarray(pair(pair_inputs, training=False))
    np.testing.assert_allclose(block_out.reshape(pair_out.shape), pair_out, atol=1e-5)
    _check_plain_sum_gradients(block, pair, block_inputs, pair_inputs)


def _set_profile_tables(model, config, rng, missing=0.3):
    """Training values and groups as training sets them: some pairs held out (group -1)."""
    values = rng.normal(size=(N_GENES, N_CONDITIONS)).astype(np.float32)
    groups = rng.integers(0, config.profile.folds, size=values.shape)
    groups[rng.random(values.shape) < missing] = -1
    rows = None
    if config.profile.decoder == "regulator_profiles":  # regulators among the genes, one of them not a gene
        rows = rng.choice(N_GENES, size=N_REGULATORS, replace=False)
        rows[0] = -1
    model.get_layer("expression_profile").set_tables(np.where(groups >= 0, values, 0.0), groups, regulator_rows=rows)
    return values, groups


def _check_plain_sum_gradients(block, pair, block_inputs, pair_inputs):
    """d(sum of all outputs)/d(weights) agrees between the forms (1e-5)."""
    def gradients(model, model_inputs):
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(model(model_inputs, training=False))
        return tape.gradient(total, model.trainable_weights)

    for weight, mine, theirs in zip(block.trainable_weights, gradients(block, block_inputs),
                                    gradients(pair, pair_inputs)):
        if mine is None:
            assert theirs is None, weight.path
            continue
        np.testing.assert_allclose(np.asarray(tf.convert_to_tensor(mine)), np.asarray(tf.convert_to_tensor(theirs)),
                                   atol=1e-5, rtol=1e-5, err_msg=weight.path)


def test_a_training_pair_is_never_predicted_from_its_own_value_and_a_held_out_pair_reads_every_one(tmp_path):
    config = VARIANTS["profile"]
    rng = np.random.default_rng(4)
    block, _ = build_models(config, LENGTH, N_REGULATORS, n_genes=N_GENES, n_conditions=N_CONDITIONS)
    _randomise(block, rng)
    values, groups = _set_profile_tables(block, config, rng)
    inputs = {**_block_inputs(rng, n_genes=N_GENES, n_conditions=N_CONDITIONS),
              "gene": np.arange(N_GENES, dtype=np.int32), "condition": np.arange(N_CONDITIONS, dtype=np.int32)}
    before = np.asarray(block.predict_on_batch(inputs))
    gene = 0
    trained = np.flatnonzero(groups[gene] >= 0)
    condition = trained[0]
    changed = values.copy()
    changed[gene, condition] += 5.0
    block.get_layer("expression_profile").set_tables(np.where(groups >= 0, changed, 0.0), groups)
    after = np.asarray(block.predict_on_batch(inputs))
    assert after[gene, condition] == pytest.approx(before[gene, condition], abs=1e-6)
    same_group = groups[gene] == groups[gene, condition]
    moved = np.abs(after[gene] - before[gene]) > 1e-4
    assert not moved[same_group].any()
    assert moved[~same_group].all()  # other groups and the held-out pairs read the changed value
    np.testing.assert_allclose(after[1:], before[1:], atol=1e-6)  # other genes' profiles are their own
    block.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(np.asarray(restored.predict_on_batch(inputs)), after, atol=1e-5)


def test_the_profile_tower_is_refused_where_test_genes_or_conditions_are_unseen():
    profile = {"model": {"fusion": "bilinear", "head": {"dense_units": []}, "profile": {"dense_units": [8]}}}
    with pytest.raises(DeepRegError, match="model.profile.dense_units.*data.split = genes"):
        RunConfig.from_dict({**profile, "data": {"split": "genes"}})
    with pytest.raises(DeepRegError, match="model.profile.decoder = conditions clashes with data.split = conditions"):
        RunConfig.from_dict({**profile, "data": {"split": "conditions"}})
    regulators = {"model": {**profile["model"], "profile": {"dense_units": [8], "decoder": "regulators"}}}
    assert RunConfig.from_dict({**regulators, "data": {"split": "conditions"}}).model.profile.decoder == "regulators"
    with pytest.raises(DeepRegError, match="model.profile.*model.fusion = tensor"):
        ModelConfig(profile=ProfileConfig(dense_units=(8,)))


def test_in_model_kmer_counts_match_the_ridge_baselines_features():
    rng = np.random.default_rng(1)
    sequences = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (6, 50))]
    sequences[2, 10:13] = 0  # an N run: windows touching it are not counted
    from deepreg.models.bilinear import GeneKmerCounts

    counted = np.asarray(GeneKmerCounts(4, proximal=(20,))(sequences.astype(np.float32)))
    assert counted.shape[1] == 2 * 136  # canonical 4-mers, whole promoter then the proximal 20 bp
    np.testing.assert_allclose(counted[:, :136], baselines.kmer_counts(sequences, 4), atol=1e-4)
    np.testing.assert_allclose(counted[:, 136:], baselines.kmer_counts(sequences[:, -20:], 4), atol=1e-4)


def test_an_offset_model_starts_as_the_baseline_and_the_saved_model_keeps_its_table(tmp_path):
    config = dataclasses.replace(BILINEAR, offset="additive")
    block, _ = build_models(config, LENGTH, N_REGULATORS, n_genes=N_GENES, n_conditions=N_CONDITIONS)
    table = np.random.default_rng(2).normal(size=(N_GENES, N_CONDITIONS)).astype(np.float32)
    block.get_layer("baseline_offset").table.assign(table)
    inputs = _block_inputs(np.random.default_rng(3))
    expected = table[np.ix_(inputs["gene"], inputs["condition"])]
    np.testing.assert_allclose(np.asarray(block.predict_on_batch(inputs)), expected, atol=1e-6)
    block.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(np.asarray(restored.predict_on_batch(inputs)), expected, atol=1e-6)


@pytest.mark.parametrize("thresholds", [(-0.5, 0.5), (-1.0, 0.25)])
def test_a_3_class_offset_model_starts_as_the_baselines_classes(thresholds):
    """Before training, a 3-class model on a baseline calls a pair down / up exactly where the baseline's
    log2 ratio is beyond the data's class thresholds, whatever the towers' random weights."""
    config = dataclasses.replace(BILINEAR, task="classification", offset="additive",
                                 profile=ProfileConfig(dense_units=(6,), folds=3))
    block, _ = build_models(config, LENGTH, N_REGULATORS, n_genes=N_GENES, n_conditions=N_CONDITIONS,
                            class_thresholds=thresholds)
    rng = np.random.default_rng(4)
    _set_profile_tables(block, config, rng)
    table = rng.normal(0, 1.0, size=(N_GENES, N_CONDITIONS)).astype(np.float32)
    block.get_layer("baseline_offset").table.assign(table)
    inputs = _block_inputs(rng, n_genes=8, n_conditions=6)
    expected = np.digitize(table[np.ix_(inputs["gene"], inputs["condition"])], thresholds)
    predicted = np.asarray(block.predict_on_batch(inputs)).argmax(-1)
    np.testing.assert_array_equal(predicted, expected)
    assert set(expected.ravel()) == {0, 1, 2}


def test_cross_fitted_offsets_never_read_the_pair_they_predict():
    """A training gene's offset under a gene split comes from a fit without that gene: changing the
    gene's own labels leaves its offset unchanged, while its in-sample fit would move."""
    dataset, labels = _tiny_dataset()
    split = np.repeat(np.where(np.arange(dataset.n_genes) % 10 == 0, VALIDATION, TRAIN)[:, None],
                      dataset.n_conditions, axis=1).astype(np.int8)
    split[-5:] = TEST
    table, notes = fit_offset("trans_ridge", dataset, labels, split, "genes", folds=4)
    gene = int(np.flatnonzero(split[:, 0] == TRAIN)[3])
    changed = labels.copy()
    changed[gene] += 5.0
    moved, _ = fit_offset("trans_ridge", dataset, changed, split, "genes", folds=4)
    np.testing.assert_allclose(moved[gene], table[gene], atol=1e-5)
    assert notes["offset"] == "trans_ridge"
    folds = training_folds(split, "genes", 4, 0)
    assert (folds[split != TRAIN] == -1).all()
    assert all((np.unique(folds[row][split[row] == TRAIN]).size <= 1) for row in range(dataset.n_genes))


def _tiny_dataset(n_genes=60, n_conditions=10, n_regulators=4):
    from deepreg.data.dataset import Dataset

    rng = np.random.default_rng(4)
    regulators = rng.normal(size=(n_regulators, n_conditions))
    expression = rng.normal(size=(n_genes, n_regulators)) @ regulators + rng.normal(0, 0.1, (n_genes, n_conditions))
    genes = tuple(f"G{index}" for index in range(n_genes))
    dataset = Dataset(genes=genes, conditions=tuple(f"c{index}" for index in range(n_conditions)),
                      regulators=genes[:n_regulators], sequences=np.zeros((n_genes, 20, 4), np.uint8),
                      expression=expression.astype(np.float32), regulator_expression=regulators.T.astype(np.float32),
                      symbols=genes, regulator_symbols=genes[:n_regulators], fingerprint="tiny", summary={})
    return dataset, dataset.expression


def test_gene_embedding_is_refused_where_test_genes_are_unseen():
    model = dataclasses.replace(BILINEAR, gene_embedding=True)
    for split in ("genes", "genes_and_conditions"):
        with pytest.raises(DeepRegError, match="model.gene_embedding = true clashes with data.split"):
            RunConfig(model=model).with_updates({"data.split": split})
    assert RunConfig(model=model).with_updates({"data.split": "conditions"}).model.gene_embedding


def test_condition_embedding_is_refused_where_test_conditions_are_unseen():
    model = dataclasses.replace(BILINEAR, condition_embedding=True)
    for split in ("conditions", "genes_and_conditions"):
        with pytest.raises(DeepRegError, match="model.condition_embedding = true clashes with data.split"):
            RunConfig(model=model).with_updates({"data.split": split})
    assert RunConfig(model=model).with_updates({"data.split": "genes"}).model.condition_embedding


def test_unknown_fusion_is_refused_when_the_config_is_read():
    with pytest.raises(DeepRegError, match=r"model.fusion: unknown fusion 'tensr' \(registered: .*bilinear"):
        ModelConfig.from_dict({"fusion": "tensr"})
    with pytest.raises(DeepRegError, match="model.offset"):
        ModelConfig.from_dict({"fusion": "tensor", "task": "classification", "offset": "trans_ridge"})
    with pytest.raises(DeepRegError, match="weight_decay"):
        TrainingConfig(optimizer="adam", weight_decay=0.1)


def _fit_with_additive_score(config):
    """Train `config` on its data; also score the additive baseline on the same test pairs."""
    from deepreg.data.dataset import load_dataset
    from deepreg.training.train import fit

    dataset = load_dataset(config.data)
    split = dataset.split(config.data)
    labels = dataset.labels("regression", config.data)
    result = fit(dataset, config.data, config.model, config.training, verbose=0)
    return result, baselines.score(baselines.fit_predict_additive(labels, split), labels, split, TEST)


def test_bilinear_model_beats_the_additive_baseline_on_held_out_genes_with_a_planted_cis_x_trans_rule(tmp_path):
    """Genes with motif A follow regulator A, genes with motif B follow -regulator B: the additive
    baseline (gene + condition effects) knows nothing of a new gene; a cis x trans model does."""
    from synthetic import tiny_run_config, write_compendium

    files = write_compendium(tmp_path / "data", n_genes=300, n_conditions=24)
    base = tiny_run_config(tmp_path, files)
    config = base.with_updates({
        "data.split": "genes", "model.fusion": "bilinear", "model.rank": 8, "model.head.dense_units": [],
        "model.head.dropout": 0.0, "model.sequence.filters": [8], "model.sequence.filter_width": [7],
        "model.sequence.reverse_complement": "mirrored", "model.sequence.dense_units": [16],
        "model.regulators.dense_units": [16], "training.optimizer": "adamw", "training.learning_rate": 0.01,
        "training.weight_decay": 1e-4, "training.schedule": "cosine", "training.epochs": 20,
        "training.block_genes": 32, "training.block_conditions": 24})
    result, additive = _fit_with_additive_score(config)
    assert result.scores["test"]["pearson_r"] > additive["r"] + 0.3, (result.scores["test"], additive)
    assert result.scores["test"]["pearson_r"] > 0.6


def test_offset_tables_are_cached_by_what_they_depend_on(tmp_path):
    from deepreg.training.offsets import cached_offset

    dataset, labels = _tiny_dataset()
    split = np.where(np.random.default_rng(6).random(labels.shape) < 0.8, TRAIN, VALIDATION).astype(np.int8)
    first, notes = cached_offset("trans_ridge", dataset, labels, split, "random", tmp_path)
    assert len(list(tmp_path.glob("offset-*.npz"))) == 1 and notes["offset"] == "trans_ridge"
    again, _ = cached_offset("trans_ridge", dataset, labels, split, "random", tmp_path)
    np.testing.assert_array_equal(first, again)
    moved, _ = cached_offset("trans_ridge", dataset, labels + 1.0, split, "random", tmp_path)
    assert len(list(tmp_path.glob("offset-*.npz"))) == 2
    np.testing.assert_allclose(moved, first + 1.0, atol=1e-3)
    assert not list(tmp_path.glob(".partial-*"))


@pytest.mark.parametrize("learning_rate, keeps_start", [(3.0, True), (0.01, False)])
def test_an_offset_model_ends_as_its_baseline_when_no_epoch_beats_it_on_validation(tmp_path, learning_rate,
                                                                                    keeps_start):
    """A wild learning rate makes every epoch worse than the starting point (the baseline alone): the
    model must end as the baseline, not as the least bad trained epoch. A sane one must still learn."""
    from synthetic import tiny_run_config, write_compendium

    files = write_compendium(tmp_path / "data", n_genes=120, n_conditions=16)
    config = tiny_run_config(tmp_path, files).with_updates({
        "model.fusion": "bilinear", "model.rank": 8, "model.offset": "additive", "model.head.dense_units": [],
        "model.head.dropout": 0.0, "model.sequence.dense_units": [16], "model.regulators.dense_units": [16],
        "training.optimizer": "adam", "training.learning_rate": learning_rate, "training.epochs": 4 if keeps_start else 12,
        "training.early_stopping_patience": 12, "training.block_genes": 32})
    result, additive = _fit_with_additive_score(config)
    assert result.notes["start_val_loss"] > 0
    if keeps_start:
        assert result.notes["best_epoch"] == 0
        assert min(result.history["val_loss"]) > result.notes["start_val_loss"]
        assert result.scores["test"]["pearson_r"] == pytest.approx(additive["r"], abs=1e-4)
    else:
        assert result.notes["best_epoch"] >= 1
        assert result.scores["test"]["pearson_r"] > additive["r"] + 0.02, (result.scores["test"], additive)


def test_an_ensemble_predicts_the_mean_of_its_members_each_trained_as_its_own_seeded_run(tmp_path):
    """`training.ensemble: 2` with seed 1 is the mean of the single runs of seeds 2 and 3 (no shared
    member with seed 0's ensemble); it survives saving, and attribution refuses it in one line."""
    from synthetic import tiny_run_config, write_compendium

    from deepreg.attribution._network import read_network
    from deepreg.data.dataset import load_dataset
    from deepreg.training.evaluate import predict_matrix
    from deepreg.training.train import fit

    files = write_compendium(tmp_path / "data", n_genes=80, n_conditions=12)
    config = tiny_run_config(tmp_path, files).with_updates({
        "model.fusion": "bilinear", "model.rank": 4, "model.offset": "additive", "model.head.dense_units": [],
        "model.head.dropout": 0.0, "model.sequence.dense_units": [8], "model.regulators.dense_units": [8],
        "training.epochs": 2, "training.seed": 1, "training.ensemble": 2})
    dataset = load_dataset(config.data)
    ensemble = fit(dataset, config.data, config.model, config.training, verbose=0)
    singles = [fit(dataset, config.data, config.model, dataclasses.replace(config.training, seed=seed, ensemble=1),
                   verbose=0) for seed in (2, 3)]

    def predict(model):
        return predict_matrix(model, dataset.sequences, dataset.regulator_inputs())

    single_predictions = [predict(single.model) for single in singles]
    assert np.abs(single_predictions[0] - single_predictions[1]).max() > 1e-3  # the members differ
    np.testing.assert_allclose(predict(ensemble.model), np.mean(single_predictions, axis=0), atol=1e-5)
    assert ensemble.notes["ensemble_best_epochs"] == ",".join(str(s.notes["best_epoch"]) for s in singles)
    ensemble.model.save(tmp_path / "ensemble.keras")
    reloaded = keras.models.load_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(predict(reloaded), predict(ensemble.model), atol=1e-6)
    with pytest.raises(DeepRegError, match="mean of 2 networks .*training.ensemble: 1"):
        read_network(reloaded)
    with pytest.raises(DeepRegError, match="training.ensemble: expected at least 1"):
        TrainingConfig(ensemble=0)
