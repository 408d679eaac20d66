"""Baselines on synthetic data whose generating structure each baseline should (or should not) find."""

import numpy as np
import pytest

from deepreg import baselines as bl

BASES = "ACGT"


def random_pair_split(shape, rng, fractions=(0.8, 0.1, 0.1)):
    return rng.choice(np.array([0, 1, 2], dtype=np.int8), size=shape, p=fractions)


def held_out_columns_split(shape, rng, n_validation, n_test):
    split = np.zeros(shape, dtype=np.int8)
    columns = rng.permutation(shape[1])
    split[:, columns[:n_validation]] = 1
    split[:, columns[n_validation : n_validation + n_test]] = 2
    return split


def one_hot(strings):
    codes = np.array([[BASES.index(base) for base in string] for string in strings])
    return np.eye(4, dtype=np.uint8)[codes]


def additive_data(rng, n_genes=200, n_conditions=40, noise=0.1):
    gene_effect = rng.normal(size=(n_genes, 1))
    condition_effect = rng.normal(size=(1, n_conditions))
    return (gene_effect + condition_effect + noise * rng.normal(size=(n_genes, n_conditions))).astype(np.float32)


def test_additive_recovers_gene_plus_condition_effects():
    rng = np.random.default_rng(0)
    expression = additive_data(rng)
    split = random_pair_split(expression.shape, rng)
    additive = bl.score(bl.fit_predict_additive(expression, split), expression, split)
    zero = bl.score(bl.fit_predict_zero(expression, split), expression, split)
    gene_mean = bl.score(bl.fit_predict_gene_mean(expression, split), expression, split)
    assert additive["r"] > 0.95
    assert np.isnan(zero["r"])
    assert gene_mean["r"] < additive["r"] - 0.1
    assert additive["mse"] < gene_mean["mse"] < zero["mse"]


def test_held_out_genes_fall_back_to_global_mean_or_condition_effects():
    rng = np.random.default_rng(1)
    expression = additive_data(rng, n_genes=30, n_conditions=10)
    split = np.zeros(expression.shape, dtype=np.int8)
    split[:5] = 2
    gene_mean = bl.fit_predict_gene_mean(expression, split)
    np.testing.assert_allclose(gene_mean[:5], expression[5:].mean(), rtol=1e-5)
    np.testing.assert_allclose(gene_mean[5:, 0], expression[5:].mean(axis=1), rtol=1e-5)
    # complete training rows: global mean + condition effect is exactly the condition's mean
    additive = bl.fit_predict_additive(expression, split)
    np.testing.assert_allclose(additive[:5], bl.fit_predict_condition_mean(expression, split)[:5], atol=1e-6)


def test_low_rank_completion_finds_the_rank_three_elbow_and_beats_additive():
    rng = np.random.default_rng(2)
    n_genes, n_conditions = 300, 60
    signal = rng.normal(size=(n_genes, 3)) @ rng.normal(size=(3, n_conditions))
    expression = (signal + 0.1 * rng.normal(size=signal.shape)).astype(np.float32)
    split = random_pair_split(expression.shape, rng)
    fit = bl.fit_low_rank_completion(expression, split, ranks=(1, 2, 3, 5, 10, 20))
    completion = bl.score(fit.predictions, expression, split)
    additive = bl.score(bl.fit_predict_additive(expression, split), expression, split)
    errors = fit.validation_mse
    # below rank 3 the signal does not fit; from rank 3 on only the noise (variance 0.01) is left,
    # and higher ranks, shrunk by ever smaller singular values, change the error by a few percent
    assert errors[2] > 20 * errors[3]
    assert errors[3] < 0.015
    assert fit.hyperparameter["rank"] >= 3
    assert errors[fit.hyperparameter["rank"]] > 0.9 * errors[3]
    assert completion["mse"] < 0.5 * additive["mse"]
    assert completion["r"] > 0.95


def test_trans_ridge_predicts_held_out_conditions_from_regulators():
    rng = np.random.default_rng(3)
    n_genes, n_conditions, n_regulators = 300, 120, 20
    regulators = rng.normal(size=(n_conditions, n_regulators)).astype(np.float32)
    weights = rng.normal(size=(n_genes, n_regulators)) / np.sqrt(n_regulators)
    expression = (weights @ regulators.T + 0.1 * rng.normal(size=(n_genes, n_conditions))).astype(np.float32)
    split = held_out_columns_split(expression.shape, rng, n_validation=15, n_test=20)
    fit = bl.fit_trans_ridge(expression, split, regulators)
    assert bl.score(fit.predictions, expression, split)["r"] > 0.9


def test_cis_kmer_ridge_learns_a_planted_six_mer_on_held_out_genes():
    rng = np.random.default_rng(4)
    n_genes, length, n_conditions = 400, 150, 12
    motif = np.array([BASES.index(base) for base in "TGACTC"])
    codes = rng.integers(0, 4, size=(n_genes, length))
    copies = rng.integers(0, 4, size=n_genes)
    for gene in np.flatnonzero(copies):
        starts = rng.choice(np.arange(0, length - 6, 7), size=copies[gene], replace=False)
        codes[gene, starts[:, None] + np.arange(6)] = motif
    sequences = np.eye(4, dtype=np.uint8)[codes]
    motif_count = bl.kmer_counts(sequences)[:, np.searchsorted(bl.canonical_kmers(), _kmer_index("GAGTCA"))]
    response = rng.normal(size=n_conditions)
    expression = (np.outer(motif_count, response) + 0.3 * rng.normal(size=(n_genes, n_conditions))).astype(np.float32)
    split = np.zeros(expression.shape, dtype=np.int8)
    genes = rng.permutation(n_genes)
    split[genes[:60]] = 1
    split[genes[60:120]] = 2
    cis = bl.score(bl.fit_predict_cis_kmer_ridge(expression, split, sequences), expression, split)
    condition_mean = bl.score(bl.fit_predict_condition_mean(expression, split), expression, split)
    assert cis["mse"] < 0.5 * condition_mean["mse"]
    assert cis["r"] > condition_mean["r"]


def _kmer_index(kmer):
    return sum(BASES.index(base) * 4 ** (len(kmer) - 1 - i) for i, base in enumerate(kmer))


def test_kmer_counts_merge_reverse_complements_and_skip_n():
    sequences = one_hot(["AACGTT", "CCCCCC"])
    sequences[1, 2] = 0
    counts = bl.kmer_counts(sequences, k=2)
    columns = {kmer: np.searchsorted(bl.canonical_kmers(2), _kmer_index(kmer)) for kmer in ("AA", "AC", "CG", "CC")}
    assert counts.shape == (2, 10)
    assert counts[0, columns["AA"]] == 2
    assert counts[0, columns["AC"]] == 2
    assert counts[0, columns["CG"]] == 1
    assert counts[0].sum() == 5
    assert counts[1, columns["CC"]] == 3
    assert counts[1].sum() == 3
    assert bl.kmer_counts(one_hot(["ACGTAC"])).shape == (1, 2080)


def test_masked_ridge_matches_a_direct_solve_per_task():
    rng = np.random.default_rng(5)
    for n_samples, n_features in ((40, 15), (30, 60)):
        design = rng.normal(size=(n_samples, n_features))
        targets = rng.normal(size=(12, n_samples))
        observed = rng.random(targets.shape) < 0.7
        paths, absolute = bl.masked_ridge_predictions(design, targets, observed, (10.0, 0.1))
        weight = observed.mean(axis=0)
        centred = design - weight @ design / weight.sum()
        for relative_alpha, predictions in paths.items():
            for task in range(targets.shape[0]):
                rows = observed[task]
                intercept = targets[task, rows].mean()
                gram = centred[rows].T @ centred[rows] + absolute[relative_alpha] * np.eye(n_features)
                coefficients = np.linalg.solve(gram, centred[rows].T @ (targets[task, rows] - intercept))
                np.testing.assert_allclose(predictions[task], intercept + centred @ coefficients, atol=1e-4)


@pytest.mark.parametrize("perturbed_splits", [(2, -1), (1, 2, -1)])
def test_predictions_ignore_everything_but_train_entries(perturbed_splits):
    rng = np.random.default_rng(6)
    n_genes, n_conditions, n_regulators = 80, 30, 8
    expression = additive_data(rng, n_genes, n_conditions)
    expression[rng.random(expression.shape) < 0.05] = np.nan
    split = rng.choice(np.array([0, 1, 2, -1], dtype=np.int8), size=expression.shape, p=(0.7, 0.1, 0.1, 0.1))
    regulators = rng.normal(size=(n_conditions, n_regulators)).astype(np.float32)
    sequences = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, size=(n_genes, 60))]
    perturbed = expression.copy()
    wild = np.isin(split, perturbed_splits)
    perturbed[wild] = rng.normal(scale=100.0, size=wild.sum())
    perturbed[wild & (rng.random(expression.shape) < 0.3)] = np.nan
    hyperparameters_fixed = 1 in perturbed_splits

    def all_predictions(values):
        ranks = (3,) if hyperparameters_fixed else bl.DEFAULT_RANKS
        alphas = (1.0,) if hyperparameters_fixed else (0.1, 1.0, 10.0)
        return [
            bl.fit_predict_zero(values, split),
            bl.fit_predict_gene_mean(values, split),
            bl.fit_predict_condition_mean(values, split),
            bl.fit_predict_additive(values, split),
            bl.fit_predict_low_rank_completion(values, split, ranks),
            bl.fit_predict_trans_ridge(values, split, regulators, alphas),
            bl.fit_predict_cis_kmer_ridge(values, split, sequences, alphas=alphas),
        ]

    for original, changed in zip(all_predictions(expression), all_predictions(perturbed)):
        assert np.all(np.isfinite(original))
        np.testing.assert_allclose(original, changed, rtol=1e-10, atol=1e-10)


def test_score_on_a_hand_computed_case():
    expression = np.array([[1.0, -1.0, 0.0], [0.6, np.nan, 2.0]], dtype=np.float32)
    split = np.array([[2, 2, 0], [2, 2, 2]], dtype=np.int8)
    predictions = np.array([[0.5, -0.5, 9.0], [0.0, 9.0, 1.0]])
    # scored pairs (truth, prediction): (1, .5), (-1, -.5), (.6, 0), (2, 1)
    metrics = bl.score(predictions, expression, split)
    assert metrics["n"] == 4
    assert metrics["mse"] == pytest.approx((0.25 + 0.25 + 0.36 + 1.0) / 4)
    truth, predicted = np.array([1.0, -1.0, 0.6, 2.0]), np.array([0.5, -0.5, 0.0, 1.0])
    assert metrics["r"] == pytest.approx(np.corrcoef(truth, predicted)[0, 1], rel=1e-6)
    # ranks: truth 3,1,2,4 ; predicted 3,1,2,4 -> rho 1
    assert metrics["spearman"] == pytest.approx(1.0)
    # classes: truth up, down, up, up ; predicted up, down, base, up -> 3 of 4
    assert metrics["accuracy"] == pytest.approx(0.75)
    only_first_gene = bl.score(predictions, expression, split, targets_mask=np.array([True, False]))
    assert only_first_gene["n"] == 2
    assert only_first_gene["mse"] == pytest.approx(0.25)
    assert only_first_gene["accuracy"] == pytest.approx(1.0)


def test_score_spearman_handles_ties():
    expression = np.array([[1.0, 2.0, 2.0, 3.0]])
    split = np.full(expression.shape, 2, dtype=np.int8)
    predictions = np.array([[1.0, 1.0, 2.0, 3.0]])
    expected = np.corrcoef([1.0, 2.5, 2.5, 4.0], [1.5, 1.5, 3.0, 4.0])[0, 1]
    assert bl.score(predictions, expression, split)["spearman"] == pytest.approx(expected)


def test_run_all_baselines_returns_one_row_per_baseline():
    rng = np.random.default_rng(7)
    expression = additive_data(rng, n_genes=60, n_conditions=20)
    split = random_pair_split(expression.shape, rng)
    regulators = rng.normal(size=(20, 5)).astype(np.float32)
    sequences = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, size=(60, 40))]
    table = bl.run_all_baselines(expression, split, regulators, sequences)
    assert list(table["name"]) == [
        "zero", "gene_mean", "condition_mean", "additive", "low_rank_completion", "trans_ridge", "cis_kmer_ridge",
        "cis_kmer_proximal_ridge",
    ]
    assert {"mse", "r", "accuracy", "hyperparameter", "seconds"} <= set(table.columns)
    assert table.loc[table["name"] == "low_rank_completion", "hyperparameter"].item().startswith("rank=")
