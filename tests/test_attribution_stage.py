"""The attribution stage end to end on tiny synthetic data, and its building blocks."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from deepreg.attribution import knockouts, motifs, regulators, stats
from deepreg.cli import main
from deepreg.errors import DeepRegError


def test_consensus_sites_both_strands():
    from deepreg.data.encoding import one_hot

    sequences = one_hot(["AAAGGGGAAAAAAA", "TTCCCCTTTTTTTT", "ACACACACACACAC"], 14)
    mask = motifs.consensus_sites(sequences, "AGGGG")
    assert mask[0, 2:7].all() and mask[0].sum() == 5
    assert mask[1, 2:7].all() and mask[1].sum() == 5      # CCCCT is AGGGG's reverse complement
    assert not mask[2].any()
    with pytest.raises(DeepRegError, match="IUPAC"):
        motifs.consensus_sites(sequences, "AGXG")


def test_meme_round_trip_and_pwm_helpers(tmp_path):
    pwm = np.array([[0.97, 0.01, 0.01, 0.01], [0.01, 0.01, 0.97, 0.01], [0.25, 0.25, 0.25, 0.25],
                    [0.01, 0.01, 0.01, 0.97]])
    path = motifs.write_meme(tmp_path / "m.meme", {"MA0001.1 TEST": pwm, "other": pwm[::-1]})
    read = motifs.read_meme(path)
    assert list(read) == ["MA0001.1 TEST", "other"]
    np.testing.assert_allclose(read["MA0001.1 TEST"], pwm, atol=1e-6)
    assert motifs.consensus(pwm) == "AGaT"
    assert motifs.trim(np.vstack([np.full((3, 4), 0.25), pwm])).shape[0] == 4
    np.testing.assert_allclose(motifs.reverse_complement_pwm(pwm)[0], [0.97, 0.01, 0.01, 0.01])


def test_stats():
    assert stats.mann_whitney_greater([5, 6, 7], [1, 2, 3])["effect_size"] == 1.0
    assert stats.fisher_enrichment([0, 1, 2], [0, 1, 2], 100)["p_value"] < 1e-4
    assert stats.precision_at_k(["a", "b", "c"], {"a", "c"}, 2) == 0.5
    np.testing.assert_allclose(stats.benjamini_hochberg([0.01, 0.04, 0.03]), [0.03, 0.04, 0.04])


def test_read_targets_formats(tmp_path):
    table = tmp_path / "t.tsv"
    table.write_text("regulator\tregulator_symbol\tgene\nYMR037C\tMSN2\tG1\nYMR037C\tMSN2\tG2\n")
    assert regulators.read_targets(table) == {"YMR037C": {"G1", "G2"}, "MSN2": {"G1", "G2"}}
    listing = tmp_path / "msn2.txt"
    listing.write_text("G1\nG3\n")
    assert regulators.read_targets(listing, regulator="MSN2") == {"MSN2": {"G1", "G3"}}
    with pytest.raises(DeepRegError, match="--targets-of"):
        regulators.read_targets(listing)


def test_filter_knockout_restores_weights():
    import keras

    from deepreg.models.build import build_model
    from deepreg.models.config import HeadConfig, ModelConfig, SequenceConfig

    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(sequence=SequenceConfig(filters=(4,), filter_width=(5,)),
                                    head=HeadConfig(dense_units=(8,))), 30, 3)
    before = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(0)
    sequences = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (5, 30))]
    inputs = rng.normal(size=(4, 3)).astype(np.float32)
    change = knockouts.filter_knockout(model, sequences, inputs, [0, 2])
    assert change.shape == (5, 4)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(DeepRegError, match="filters must be"):
        knockouts.filter_knockout(model, sequences, inputs, [9])


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A tiny model trained on the synthetic compendium (MOTIF_A read by G0000), promoted as champion."""
    from synthetic import MOTIF_A, MOTIF_B, tiny_run_config, write_compendium

    from deepreg.training.run import tracked_training

    folder = tmp_path_factory.mktemp("attribute")
    files = write_compendium(folder / "data")
    uri = f"sqlite:///{folder}/mlruns/mlflow.db"
    config = tiny_run_config(folder, files, epochs=4, block_genes=30)
    run = tracked_training(config, experiment="attribute-tests", tracking_uri=uri, verbose=0)
    assert main(["promote", "--run", run.run_id, "--tracking-uri", uri]) == 0
    targets = folder / "targets.tsv"
    genes = files["genes"]
    rows = [f"G0000\t{g}" for g, flag in zip(genes, files["has_a"]) if flag]
    rows += [f"G0001\t{g}" for g, flag in zip(genes, files["has_b"]) if flag]
    targets.write_text("regulator\tgene\n" + "\n".join(rows) + "\n")
    known = {"MA_A A": _site_pwm(MOTIF_A), "MA_B B": _site_pwm(MOTIF_B)}
    rng = np.random.default_rng(1)
    known.update({f"MR{i:03d} random{i}": rng.dirichlet(np.ones(4) * 0.5, 8) for i in range(30)})
    motifs.write_meme(folder / "known.meme", known)
    return {"uri": uri, "run": run, "folder": folder, "targets": targets, "known": folder / "known.meme", "files": files}


def _site_pwm(site):
    pwm = np.full((len(site), 4), 0.02)
    for i, letter in enumerate(site):
        pwm[i, "ACGT".index(letter)] = 0.94
    return pwm


def test_attribute_end_to_end(champion, capsys):
    uri, folder = champion["uri"], champion["folder"]
    output = folder / "out"
    code = main(["attribute", "--model", "models:/deepreg@champion", "--tracking-uri", uri, "--targets",
                 str(champion["targets"]), "--motifs", str(champion["known"]), "--knockout", "G0000=TGACTCA",
                 "--sequence-genes", "12", "--shuffles", "3", "--no-modisco", "--output", str(output),
                 "--set", "knockout_filters=3", "--set", "knockout_top_genes=20"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "attribution run" in printed
    summary = json.loads((output / "summary.json").read_text())
    assert summary["regulators"]["pairs"] == 120 * 16
    assert summary["regulators"]["summation_to_delta_max_error"] < 1e-4
    table = pd.read_csv(output / "tables" / "regulator_importance.tsv", sep="\t")
    assert len(table) == 4 and table["rank"].tolist() == [1, 2, 3, 4]
    assert {"deeplift_abs_sum", "gradient_x_input_abs_sum"} <= set(table.columns)
    tests = pd.read_csv(output / "tables" / "known_target_tests.tsv", sep="\t")
    assert set(tests["regulator"]) == {"G0000", "G0001"}
    assert (output / "motifs" / "filters.meme").is_file()
    active = len(motifs.read_meme(output / "motifs" / "filters.meme"))
    assert 0 < active <= 8 and summary["motifs"]["filters"] == 8
    matches = pd.read_csv(output / "tables" / "filter_matches.tsv", sep="\t")
    assert len(matches) == active and matches["q_value"].between(0, 1).all()
    tf = pd.read_csv(output / "tables" / "tf_knockouts.tsv", sep="\t")
    assert tf["regulator"].iloc[0] == "G0000" and tf["genes_with_sites"].iloc[0] > 0
    assert (output / "figures" / "position_bias.png").is_file()
    html = (output / "report.html").read_text()
    assert "Regulator importance" in html and "data:image/png;base64" in html

    client = mlflow.MlflowClient(uri)
    run = client.get_run(client.get_model_version_by_alias("deepreg", "champion").tags["deepreg.attribution_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["deepreg.stage"] == "attribution"
    assert run.data.tags["deepreg.source_run_id"] == champion["run"].run_id
    assert run.data.params["attribution.reference"] == "zero"
    assert "regulators.summation_to_delta_max_error" in run.data.metrics
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "summary.json", "tables", "figures", "motifs"} <= artifacts


def test_attribute_bilinear_conv_and_kmer_model_without_gene_embedding(champion, tmp_path):
    """The architecture whose full stage failed in sequence DeepLIFT (bilinear fusion, mirrored conv tower
    beside proximal k-mer counts, no per-gene embedding), end to end: sequence DeepLIFT over several
    blocks of promoters x 10 shuffles (a short last block), gradient x input, and the automatic TF
    knock-outs on its cached tower features."""
    import dataclasses

    from synthetic import MOTIF_A, MOTIF_B, tiny_run_config

    from deepreg.models.config import HeadConfig, ModelConfig, RegulatorConfig, SequenceConfig
    from deepreg.training.run import tracked_training

    files, uri = champion["files"], champion["uri"]
    model = ModelConfig(name="bilinear-conv-kmer", fusion="bilinear", rank=4, gene_embedding=False,
                        sequence=SequenceConfig(filters=(8,), filter_width=(7,), reverse_complement="mirrored",
                                                kmer=2, kmer_proximal=(20, 40), dense_units=(8,), feature_norm=True),
                        regulators=RegulatorConfig(dense_units=(8,), skip=True), head=HeadConfig(dense_units=()))
    config = dataclasses.replace(tiny_run_config(tmp_path, files, epochs=2, block_genes=30), model=model)
    run = tracked_training(config, experiment="attribute-bilinear", tracking_uri=uri, verbose=0)
    named = motifs.write_meme(tmp_path / "named.meme", {"MA_A.1 G0000": _site_pwm(MOTIF_A),
                                                        "MA_B.1 G0001": _site_pwm(MOTIF_B)})
    output = tmp_path / "out"
    code = main(["attribute", "--model", f"runs:/{run.run_id}/model", "--tracking-uri", uri, "--experiment",
                 "attribute-bilinear", "--targets", str(champion["targets"]), "--motifs", str(named),
                 "--knockout", "auto", "--sequence-genes", "20", "--shuffles", "10", "--no-modisco",
                 "--output", str(output), "--set", "knockout_filters=1", "--set", "knockout_conditions=4"])
    assert code == 0
    summary = json.loads((output / "summary.json").read_text())
    assert summary["sequence"]["genes"] == 20 and summary["sequence"]["references"] == 10
    scores = np.load(output / "tables" / "sequence_scores.npz")
    assert scores["deeplift"].shape == (20, 60, 4) and np.isfinite(scores["deeplift"]).all()
    assert {"sequence_deeplift_s", "sequence_gradient_s", "auto_knockouts_s"} <= set(summary["timings"])
    automatic = pd.read_csv(output / "tables" / "tf_knockouts_auto.tsv", sep="\t")
    assert set(automatic["regulator"]) == {"G0000", "G0001"} and (automatic["conditions"] == 4).all()


def test_attribute_errors_are_one_line(champion, capsys):
    uri = champion["uri"]
    assert main(["attribute", "--model", "models:/deepreg@nope", "--tracking-uri", uri]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["attribute", "--model", "models:/deepreg@champion", "--tracking-uri", uri, "--targets",
                 str(champion["folder"] / "missing.tsv"), "--no-modisco"]) == 2


def test_tf_knockout_targets_and_measured_profile(tmp_path):
    import keras

    from deepreg.models.build import build_model
    from deepreg.models.config import HeadConfig, ModelConfig, SequenceConfig

    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(sequence=SequenceConfig(filters=(4,), filter_width=(5,)),
                                    head=HeadConfig(dense_units=(8,))), 30, 3)
    rng = np.random.default_rng(0)
    sequences = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (6, 30))]
    inputs = rng.normal(size=(4, 3)).astype(np.float32)
    mask = np.zeros((6, 30), bool)
    mask[:2, 5:10] = True
    result = knockouts.tf_knockout(model, sequences, inputs, 1, mask, fold=32, name="R1")
    assert result.change.shape == (6, 4) and result.genes_with_sites == 2 and result.log2_fold == 5.0
    np.testing.assert_allclose(result.change_expression[2:], result.change[2:], atol=1e-6)  # no sites: trans only
    table = knockouts.targets_vs_others(result.change, [0, 1], {"a": np.array([0, 1]), "b": np.array([2, 3])})
    assert table["condition_group"].tolist() == ["a", "b"] and (table["targets"] == 2).all()
    profile = tmp_path / "measured.tsv"
    genes = [f"G{i}" for i in range(6)]
    profile.write_text("gene\tlog2_change\n" + "".join(f"G{i}\t{v}\n" for i, v in
                                                       enumerate(result.change.mean(axis=1))))
    measured = knockouts.read_measured_profile(profile, genes, [""] * 6)
    assert knockouts.compare_measured(result.change, measured)["rho"] > 0.99


@pytest.mark.parametrize("fusion,task", [("bilinear", "regression"), ("tensor", "classification")])
def test_cached_knockouts_are_the_full_knockouts_on_the_conditions_given(fusion, task):
    """The fast path (tower features cached, only promoters with sites re-run, only chosen conditions
    predicted) gives exactly what `tf_knockout` gives by predicting everything again."""
    import keras

    from deepreg.models.build import build_model
    from deepreg.models.config import HeadConfig, ModelConfig, SequenceConfig

    keras.utils.set_random_seed(0)
    if fusion == "bilinear":
        config = ModelConfig(fusion="bilinear", rank=4, gene_embedding=True, head=HeadConfig(dense_units=()),
                             sequence=SequenceConfig(filters=(4,), filter_width=(5,), kmer=2, kmer_proximal=(10,)))
        model, gene_index = build_model(config, 40, 5, n_genes=20, n_conditions=10), np.arange(9) + 3
    else:
        config = ModelConfig(task=task, sequence=SequenceConfig(filters=(4,), filter_width=(5,)),
                             head=HeadConfig(dense_units=(8,)))
        model, gene_index = build_model(config, 40, 5), None
    rng = np.random.default_rng(0)
    sequences = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (9, 40))]
    inputs = rng.normal(size=(6, 5)).astype(np.float32)
    mask = np.zeros((9, 40), bool)
    mask[2:4, 10:15] = True
    columns = np.array([1, 4])
    indices = {"gene_index": gene_index, "condition_index": columns} if gene_index is not None else {}
    background = (0.3, 0.2, 0.2, 0.3)
    full = knockouts.tf_knockout(model, sequences, inputs[columns], 2, mask, fold=32, background=background, **indices)
    cached = knockouts.CachedKnockouts(model, sequences, background=background, gene_index=gene_index)
    fast = cached.knockout(inputs[columns], 2, mask, fold=32, condition_index=columns)
    for mine, reference in ((fast.change, full.change), (fast.change_sites, full.change_sites),
                            (fast.change_expression, full.change_expression)):
        np.testing.assert_allclose(mine, reference, atol=1e-5)
    assert fast.change.shape == (9, 2) and fast.genes_with_sites == 2
    assert cached.knockout(inputs[columns], 2, mask, condition_index=columns, separate=False).change_sites is None


def test_automatic_knockouts_pick_tfs_with_targets_and_a_motif_of_their_name():
    from deepreg.attribution import auto_knockouts

    pwm = np.full((4, 4), 0.25)
    known = {"MA0001.1 AAA": pwm, "MA0001.2 AAA": pwm, "MA0002.1 Bbb": pwm, "MA0003.1 YCCC": pwm}
    regulators, symbols = ["YAAA", "YBBB", "YCCC", "YDDD"], ["AAA", "BBB", "", "DDD"]
    references = {"one": ("a table", {0: np.arange(5), 2: np.arange(9), 3: np.arange(20)}),
                  "two": ("another", {1: np.arange(7)})}
    chosen = auto_knockouts.choose_tfs(references, regulators, symbols, known, limit=10)
    assert [(c.name, c.motif, c.targets) for c in chosen] == [("YCCC", "MA0003.1 YCCC", 9), ("BBB", "MA0002.1 Bbb", 7),
                                                              ("AAA", "MA0001.2 AAA", 5)]   # DDD: no motif
    limited = auto_knockouts.choose_tfs(references, regulators, symbols, known, limit=2)
    assert [c.name for c in limited] == ["YCCC", "BBB"]
    assert auto_knockouts.requested(("auto",), (), 20) and auto_knockouts.requested((), ("bundled",), 20)
    assert not auto_knockouts.requested(("MSN2",), ("bundled",), 20) and not auto_knockouts.requested(("auto",), (), 0)
    inputs = np.array([[0.0, 1.0], [3.0, 0.0], [-1.0, 2.0], [2.0, 0.5]])
    assert auto_knockouts.knockout_conditions(inputs, 0, 2).tolist() == [1, 3]
    assert auto_knockouts.knockout_conditions(inputs, 0, 0).tolist() == [0, 1, 2, 3]
