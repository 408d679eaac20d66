"""Known targets, decoys and measured deletions: the attribution stage checked against planted biology.

A tiny compendium in the Gasch layout: MSN2 activates the genes whose promoter carries a STRE-like
site (TAGGGGT, holding AGGGG), REGB represses the genes with a GCN4-like site, ten regulators regulate
nothing. Two arrays mimic the measured msn2/4 experiment: the wild type under heat (MSN2 high) and the
msn2/4 deletion under heat (MSN2 absent, its targets lose their induction). The deletion array is held
out of training (`data.exclude_conditions`); a real Keras model is trained, promoted and attributed
with `deepreg attribute --known-targets TABLE --results-json FILE`.
"""

import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepreg.attribution import known_targets
from deepreg.cli import main
from deepreg.errors import DeepRegError

STRE_SITE = "TAGGGGT"
REGB_SITE = "TGACTCA"
DECOY_SITE = "GCGCATGC"   # planted nowhere
WILD_TYPE_HEAT = "DBY7286 37degree heat - 20 min"
DELETION_HEAT = "DBYmsn2-4- 37degree heat - 20 min"
REGULATORS = ("MSN2", "MSN4", "REGB") + tuple(f"DEC{i}" for i in range(1, 10))


def write_gasch_like(folder: Path, n_genes: int = 200, n_conditions: int = 48, length: int = 60, seed: int = 3) -> dict:
    """PCL (regulator symbols in NAME), promoters and regulators; planted MSN2 and REGB targets."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    letters = np.array(list("ACGT"))
    genes = [f"Y{index:04d}W" for index in range(n_genes)]
    sequences = ["".join(rng.choice(letters, length, p=[0.31, 0.19, 0.19, 0.31])) for _ in range(n_genes)]
    msn2_targets = rng.random(n_genes) < 0.3
    regb_targets = rng.random(n_genes) < 0.3
    msn2_targets[:len(REGULATORS)] = regb_targets[:len(REGULATORS)] = False
    msn2_sites = msn2_targets * rng.integers(1, 3, n_genes)   # one or two STRE sites: graded induction
    half = length // 2

    def plant(sequence, site, low, high):
        start = int(rng.integers(low, high - len(site)))
        return sequence[:start] + site + sequence[start + len(site):]

    for gene in range(n_genes):
        if msn2_sites[gene]:
            sequences[gene] = plant(sequences[gene], STRE_SITE, 0, half)
        if msn2_sites[gene] == 2:
            sequences[gene] = plant(sequences[gene], STRE_SITE, half, length)
        if regb_targets[gene]:
            sequences[gene] = plant(sequences[gene], REGB_SITE, 0, length)
    regulator = rng.normal(0, 1, (len(REGULATORS), n_conditions + 2))
    regulator[0, -2], regulator[0, -1] = 2.5, -3.0   # MSN2: induced by heat in the wild type, absent in the deletion
    regulator[1, -1] = -3.0                          # MSN4: absent in the deletion too
    expression = rng.normal(0, 0.1, (n_genes, n_conditions + 2))
    expression += 1.0 * msn2_sites[:, None] * regulator[0][None, :]
    expression -= 1.0 * regb_targets[:, None] * regulator[2][None, :]
    expression[:len(REGULATORS)] = regulator
    conditions = [f"condition {index}" for index in range(n_conditions)] + [WILD_TYPE_HEAT, DELETION_HEAT]
    lines = ["\t".join(["UID", "NAME", "GWEIGHT", *conditions])]
    for index, (gene, row) in enumerate(zip(genes, expression)):
        name = REGULATORS[index] if index < len(REGULATORS) else ""
        lines.append("\t".join([gene, name, "1", *(f"{v:.3f}" for v in row)]))
    (folder / "expression.pcl").write_text("\n".join(lines) + "\n")
    with gzip.open(folder / "promoters.fa.gz", "wt") as handle:
        handle.writelines(f">{gene}\n{sequence}\n" for gene, sequence in zip(genes, sequences))
    (folder / "regulators.txt").write_text("\n".join(genes[:len(REGULATORS)]) + "\n")
    return {"expression": folder / "expression.pcl", "promoters": folder / "promoters.fa.gz",
            "regulators": folder / "regulators.txt", "genes": genes, "msn2": msn2_targets, "regb": regb_targets}


def write_reference(path: Path, files: dict, seed: int = 5) -> Path:
    """A long table: MSN2 and REGB by symbol with their planted targets, DEC1 with random genes."""
    genes = files["genes"]
    rows = [f"MSN2\t{g}" for g, flag in zip(genes, files["msn2"]) if flag]
    rows += [f"REGB\t{g}" for g, flag in zip(genes, files["regb"]) if flag]
    random_genes = np.random.default_rng(seed).choice(genes[len(REGULATORS):], 50, replace=False)
    rows += [f"DEC1\t{g}" for g in random_genes]
    path.write_text("TF\tTARGET_ORF\n" + "\n".join(rows) + "\n")
    return path


def _site_meme(path: Path) -> Path:
    from deepreg.attribution import motifs

    def pwm(site):
        matrix = np.full((len(site), 4), 0.02)
        for i, letter in enumerate(site):
            matrix[i, "ACGT".index(letter)] = 0.94
        return matrix

    rng = np.random.default_rng(1)
    known = {"MA0341.1 MSN2": pwm(STRE_SITE), "MA0303.1 REGB": pwm(REGB_SITE),
             "MA9999.1 DEC1": pwm(DECOY_SITE)}   # a decoy with a motif: knocked out automatically too
    known.update({f"MR{i:03d} random{i}": rng.dirichlet(np.ones(4) * 0.5, 8) for i in range(20)})
    return motifs.write_meme(path, known)


@pytest.fixture(scope="module")
def attributed(tmp_path_factory):
    """Train on the Gasch-like compendium with the deletion held out, promote, run `deepreg attribute`."""
    from synthetic import tiny_run_config

    from deepreg.training.run import tracked_training

    folder = tmp_path_factory.mktemp("known-targets")
    files = write_gasch_like(folder / "data")
    uri = f"sqlite:///{folder}/mlruns/mlflow.db"
    config = tiny_run_config(folder, files, filters=8, width=7, dense=(16, 16), epochs=10, block_genes=50,
                             block_conditions=50, learning_rate=1e-2)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, exclude_conditions=("^DBYmsn2",)))
    run = tracked_training(config, experiment="known-target-tests", tracking_uri=uri, verbose=0)
    assert main(["promote", "--run", run.run_id, "--tracking-uri", uri]) == 0
    reference = write_reference(folder / "reference.tsv", files)
    output, results = folder / "out", folder / "results.json"
    argv = ["attribute", "--model", "models:/deepreg@champion", "--tracking-uri", uri, "--known-targets",
            str(reference), "--motifs", str(_site_meme(folder / "known.meme")), "--sequence-genes", "0",
            "--no-modisco", "--output", str(output), "--results-json", str(results), "--truth", "none",
            "--set", "knockout_filters=1", "--set", "deletion_top_genes=40"]
    return {"argv": argv, "files": files, "output": output, "results": results, "config": config,
            "uri": uri, "code": main(argv)}


def test_reader_refuses_malformed_tables_with_file_line_and_expectation(tmp_path):
    table = tmp_path / "targets.tsv"
    table.write_text("TF\tTARGET_ORF\nMSN2\tYAL001C\nMSN2 YAL002W\n")
    with pytest.raises(DeepRegError, match=r"targets\.tsv: line 3: expected 2 tab-separated fields .*TF, TARGET_ORF.*got 1"):
        known_targets.read_known_targets(table)
    table.write_text("regulator_name,gene_id\nMSN2,YAL001C\n")
    with pytest.raises(DeepRegError, match=r"line 1: expected a header with columns TF .*TARGET_ORF"):
        known_targets.read_known_targets(table)
    table.write_text("TF,TARGET_ORF\nMSN2,\n")
    with pytest.raises(DeepRegError, match=r"line 2: expected a TF and a TARGET_ORF"):
        known_targets.read_known_targets(table)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "MSN2.txt").write_text("YAL001C\nYAL002W\n")
    (lists / "YAP1.txt").write_text("# YAP1 targets\nYAL003W, YAL004W\n")
    with pytest.raises(DeepRegError, match=r"YAP1\.txt: line 2: expected one gene id per line"):
        known_targets.read_known_targets(lists)
    (lists / "YAP1.txt").write_text("YAL003W\n")
    assert known_targets.read_known_targets(lists) == {"MSN2": {"YAL001C", "YAL002W"}, "YAP1": {"YAL003W"}}


def test_excluded_conditions_are_in_no_split_and_typos_are_refused(tmp_path):
    from deepreg.data.dataset import load_dataset

    files = write_gasch_like(tmp_path / "data", n_genes=30)
    from synthetic import tiny_run_config

    data = dataclasses.replace(tiny_run_config(tmp_path, files).data, exclude_conditions=("^DBYmsn2",))
    dataset = load_dataset(data)
    split = dataset.split(data)
    column = dataset.conditions.index(DELETION_HEAT)
    assert (split[:, column] == -1).all() and (split[:, :column] >= 0).all()
    with pytest.raises(DeepRegError, match=r"data\.exclude_conditions\[0\]: '\^DBYmns2' matches none"):
        dataset.split(dataclasses.replace(data, exclude_conditions=("^DBYmns2",)))


def test_planted_tf_separates_its_targets_and_a_decoy_does_not(attributed):
    assert attributed["code"] == 0
    tests = pd.read_csv(attributed["output"] / "tables" / "known_target_decoy_tests.tsv", sep="\t")
    deeplift = tests[tests["method"] == "deeplift"].set_index("symbol")
    assert set(deeplift.index) == {"MSN2", "REGB", "DEC1"}
    assert deeplift.loc["MSN2", "auroc"] > 0.8 and deeplift.loc["REGB", "auroc"] > 0.8
    assert abs(deeplift.loc["DEC1", "auroc"] - 0.5) < 0.15    # random "targets": no better than chance
    assert deeplift.loc["DEC1", "decoy_p"] > 0.1
    # On attribution shares the planted TFs beat every decoy regulator on their own targets.
    shares = tests[tests["method"] == "deeplift_share"].set_index("symbol")
    assert shares.loc["MSN2", "rank"] == 1 and shares.loc["REGB", "rank"] == 1
    assert shares.loc["MSN2", "decoy_p"] == pytest.approx(1 / len(REGULATORS))  # the smallest p possible here
    assert abs(shares.loc["DEC1", "auroc"] - 0.5) < 0.15 and shares.loc["DEC1", "decoy_p"] > 0.1


def test_knockout_of_planted_deletion_correlates_with_the_held_out_measurement(attributed):
    table = pd.read_csv(attributed["output"] / "tables" / "measured_deletion_knockouts.tsv", sep="\t")
    heat = table[table["deletion"] == "msn24_heat"].set_index("variant")
    assert len(heat) == 2 and heat["mutants_held_out"].all()
    assert heat.loc["sites masked + expression lowered", "spearman"] > 0.3
    assert heat.loc["sites masked + expression lowered", "spearman_top"] > 0.3
    assert heat.loc["expression lowered only", "spearman"] > 0.3
    assert heat.loc["sites masked + expression lowered", "genes_with_sites"] >= attributed["files"]["msn2"].sum()


def test_automatic_knockout_of_a_planted_tf_moves_its_targets_and_a_decoys_does_not(attributed):
    """`--known-targets` without `--knockout`: every TF with targets and a motif of its name is knocked out."""
    table = pd.read_csv(attributed["output"] / "tables" / "tf_knockouts_auto.tsv", sep="\t").set_index("symbol")
    assert set(table.index) == {"MSN2", "REGB", "DEC1"}
    assert (table["conditions"] == 16).all()          # predicted in the TF's 16 highest conditions, not all 50
    for planted in ("MSN2", "REGB"):
        assert table.loc[planted, "auroc"] > 0.7 and table.loc[planted, "q_value"] < 0.01
        assert table.loc[planted, "auroc"] > table.loc["DEC1", "auroc"] + 0.25
    assert table.loc["MSN2", "auroc"] > 0.9 and table.loc["MSN2", "rank"] == 1  # no other knock-out moves them more
    assert abs(table.loc["DEC1", "auroc"] - 0.5) < 0.15
    results = json.loads(attributed["results"].read_text())
    line = results["tf_knockouts_auto"]["references"]["reference"]
    assert line["tfs"] == 3 and line["per_tf"]["MSN2"]["auroc"] == pytest.approx(table.loc["MSN2", "auroc"])
    html = (attributed["output"] / "report.html").read_text()
    assert "TF knock-outs against known targets (automatic)" in html


def test_results_json_and_report(attributed):
    results = json.loads(attributed["results"].read_text())
    expected = {"model_uri", "training_split", "conditions_held_out", "tfs_tested", "fraction_tfs_auroc_above_half",
                "fraction_tfs_q_below_0.1", "per_reference", "msn2_target_p", "msn4_target_p",
                "msn24_knockout_spearman_heat", "msn24_knockout_spearman_h2o2", "yap1_knockout_spearman_h2o2",
                "filters_matched_q0.1", "filters_matched_q0.05", "top10_overlap_known", "top10_overlap_p", "command"}
    assert expected <= set(results)
    assert results["conditions_held_out"] == [DELETION_HEAT]
    assert results["tfs_tested"] == 3 and results["fraction_tfs_auroc_above_half"] >= 2 / 3
    assert results["msn2_target_p"] < 1e-6 and results["msn24_knockout_spearman_heat"] > 0.3
    assert results["msn24_knockout_spearman_h2o2"] is None          # no H2O2 arrays in this compendium
    assert results["top10_overlap_known"] >= 1                       # MSN2 is in both published lists
    assert results["command"].startswith("deepreg")
    html = (attributed["output"] / "report.html").read_text()
    assert "Decoy-controlled known-target test" in html and DELETION_HEAT in html


def test_lookup_terms_carry_their_share_of_the_prediction():
    import keras

    from deepreg.attribution.gene_terms import lookup_term_shares
    from deepreg.models.build import build_model
    from deepreg.models.config import HeadConfig, ModelConfig, SequenceConfig

    keras.utils.set_random_seed(0)
    config = ModelConfig(fusion="bilinear", rank=4, gene_embedding=True,
                         sequence=SequenceConfig(filters=(4,), filter_width=(5,)), head=HeadConfig(dense_units=()))
    model = build_model(config, 30, 3, n_genes=6, n_conditions=4)
    fusion = next(layer for layer in model.layers if type(layer).__name__ == "BilinearFusion")
    rng = np.random.default_rng(0)
    fusion.embedding_offset.assign(rng.normal(0, 3, (6, 1)).astype("float32"))
    sequences = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (6, 30))]
    inputs = rng.normal(size=(4, 3)).astype(np.float32)
    shares = lookup_term_shares(model, sequences, inputs).set_index("term")
    assert shares.loc["gene embedding (E_g, e_g)", "variance_share"] > 0.5   # the per-gene offset dominates
    after = lookup_term_shares(model, sequences, inputs).set_index("term")
    assert after.equals(shares)                                              # weights restored
