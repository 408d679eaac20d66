"""The data layer: readers on good and malformed files, one-hot, splits, cache, factored batches."""

import gzip

import numpy as np
import pytest

from deepreg.data import encoding, io, readers
from deepreg.data.batches import BlockBatches
from deepreg.data.config import DataConfig
from deepreg.data.dataset import build_dataset, load_dataset
from deepreg.data.splits import TEST, TRAIN, UNUSED, VALIDATION, make_split
from deepreg.errors import DeepRegError


def test_pcl_reader_keeps_verbatim_condition_names_and_missing_cells(tmp_path):
    path = tmp_path / "x.pcl"
    path.write_text("UID\tNAME\tGWEIGHT\theat 0 min  hs-2\theat 0 min  hs-2\tdiauxic 11.5 \n"
                    "EWEIGHT\t\t\t1\t1\t1\n"
                    "YAL001C\tTFC3\t1\t1.53\t\t-0.06\n"
                    "YAL002W\tVPS8\t1\t0.1\t0.2\t0.3\n")
    matrix = readers.read_expression(path)
    assert matrix.conditions == ("heat 0 min  hs-2", "heat 0 min  hs-2", "diauxic 11.5 ")
    assert matrix.genes == ("YAL001C", "YAL002W")
    assert matrix.names[0] == "TFC3"
    assert np.isnan(matrix.values[0, 1]) and matrix.values[0, 0] == pytest.approx(1.53)


def test_plain_csv_expression_is_read(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("gene,c1,c2\nA,1,2\nB,3,\n")
    matrix = readers.read_expression(path)
    assert matrix.conditions == ("c1", "c2") and np.isnan(matrix.values[1, 1])


@pytest.mark.parametrize("body, message", [
    ("UID\tNAME\tGWEIGHT\tc1\nG1\t\t1\tabc\n", "line 2, condition 'c1': expected a number"),
    ("UID\tNAME\tGWEIGHT\tc1\nG1\t\t1\t1\nG1\t\t1\t2\n", "line 3: gene 'G1' already given on line 2"),
    ("UID\tNAME\tGWEIGHT\tc1\tc2\nG1\t\t1\t1\t2\t3\n", "line 2: expected 5 fields as in the header, got 6"),
])
def test_malformed_expression_names_file_and_line(tmp_path, body, message):
    path = tmp_path / "bad.pcl"
    path.write_text(body)
    with pytest.raises(DeepRegError, match=message) as error:
        readers.read_expression(path)
    assert str(path) in str(error.value)


def test_fasta_and_two_column_promoters(tmp_path):
    fasta = tmp_path / "p.fa.gz"
    with gzip.open(fasta, "wt") as handle:
        handle.write(">YAL001C some description\nACGT\nacgn\n>YAL002W\nTTTT\n")
    assert io.read_promoters(fasta) == {"YAL001C": "ACGTACGN", "YAL002W": "TTTT"}
    table = tmp_path / "p.txt"
    table.write_text("YAL001C\tACGTRY\nYAL002W\tTT\n")
    assert io.read_promoters(table)["YAL001C"] == "ACGTRY"


@pytest.mark.parametrize("body, message", [
    ("ACGT\n>G1\nACGT\n", "line 1: sequence before the first '>'"),
    (">G1\nACGX\n", "line 2: 'X' is not a nucleotide letter"),
    (">G1\nACG\n>G1\nAC\n", "line 3: promoter 'G1' already given on line 1"),
    (">G1\n>G2\nAC\n", "line 1: promoter 'G1' has no sequence"),
    ("G1 ACGT\n", "line 1: expected FASTA or 'ID<TAB>SEQUENCE'"),
])
def test_malformed_promoters_are_refused(tmp_path, body, message):
    path = tmp_path / "bad.fa"
    path.write_text(body)
    with pytest.raises(DeepRegError, match=message):
        io.read_promoters(path)


def test_regulator_list_skips_comments_and_refuses_duplicates(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("# regulators\nYMR037C\n\nYKL062W\tMSN4\n")
    assert io.read_id_list(path) == ("YMR037C", "YKL062W")
    path.write_text("A\nB\nA\n")
    with pytest.raises(DeepRegError, match="line 3: regulator 'A' already given on line 1"):
        io.read_id_list(path)


def test_one_hot_round_trip_and_policies():
    sequences = ["ACGTNRYacgt", "GATTACA"]
    array = encoding.one_hot(sequences, 9)
    assert array.dtype == np.uint8 and array.shape == (2, 9, 4)
    # trimmed and padded at the distal (5') end; N and IUPAC letters are all-zero rows
    assert encoding.decode(array) == ["GTNNNACGT", "NNGATTACA"]
    assert array[0, 2].sum() == 0 and array[1, 0].sum() == 0
    background = encoding.as_model_input(array, (0.31, 0.19, 0.19, 0.31))
    assert background[1, 0].tolist() == pytest.approx([0.31, 0.19, 0.19, 0.31])
    assert encoding.as_model_input(array)[1, 0].sum() == 0


def test_dataset_factored_form_and_policies(data_config, compendium):
    dataset = build_dataset(data_config)
    assert dataset.sequences.shape == (120, 60, 4) and dataset.sequences.dtype == np.uint8
    assert dataset.expression.shape == (120, 16)
    assert dataset.regulator_inputs().shape == (16, 4)
    # the regulator inputs are the regulators' own expression rows (missing -> 0)
    np.testing.assert_allclose(dataset.regulator_inputs()[:, 1], np.nan_to_num(compendium["values"][1]), atol=1e-3)
    labels = dataset.labels("regression", data_config)
    assert np.isnan(labels).sum() == np.isnan(dataset.expression).sum() > 0
    filled = dataset.labels("regression", DataConfig(**{**data_config.to_dict(), "missing": "zero"}))
    assert not np.isnan(filled).any()
    classes = dataset.labels("classification", data_config)
    observed = ~np.isnan(dataset.expression)
    assert set(np.unique(classes[observed])) == {0.0, 1.0, 2.0}
    assert (classes[observed & (dataset.expression >= 0.5)] == 2).all()


def test_missing_regulator_and_missing_promoters(data_config, compendium, tmp_path):
    bad = tmp_path / "regs.txt"
    bad.write_text("G0000\nNOT_A_GENE\n")
    config = DataConfig(**{**data_config.to_dict(), "regulators": str(bad)})
    with pytest.raises(DeepRegError, match="regulator 'NOT_A_GENE' is not a gene of the expression matrix"):
        build_dataset(config)
    few = tmp_path / "few.fa"
    few.write_text("".join(f">G{i:04d}\n{compendium['sequences'][i]}\n" for i in range(10)))
    dataset = build_dataset(DataConfig(**{**data_config.to_dict(), "promoters": str(few)}))
    assert dataset.n_genes == 10 and dataset.summary["genes_without_promoter"] == 110
    assert dataset.n_regulators == 4


def test_cache_is_reused_and_keyed_by_inputs(data_config, compendium):
    first = load_dataset(data_config)
    cached = list((data_config_path := __import__("pathlib").Path(data_config.cache_dir)).glob("dataset-*.h5"))
    assert len(cached) == 1 and not list(data_config_path.glob(".partial-*"))
    again = load_dataset(data_config)
    assert again.fingerprint == first.fingerprint and again.genes == first.genes
    np.testing.assert_array_equal(again.sequences, first.sequences)
    np.testing.assert_array_equal(again.expression, first.expression)
    with open(compendium["regulators"], "a") as handle:
        handle.write("G0010\n")
    changed = load_dataset(data_config)
    assert changed.fingerprint != first.fingerprint and changed.n_regulators == 5
    assert len(list(data_config_path.glob("dataset-*.h5"))) == 2


@pytest.mark.parametrize("kind", ["random", "genes", "conditions", "genes_and_conditions"])
def test_each_split_keeps_its_promise(kind):
    split = make_split(200, 40, kind, (0.8, 0.1, 0.1), seed=3)
    np.testing.assert_array_equal(split, make_split(200, 40, kind, (0.8, 0.1, 0.1), seed=3))
    used = split[split != UNUSED]
    assert {TRAIN, VALIDATION, TEST} <= set(np.unique(used))
    if kind == "random":
        assert abs((split == TRAIN).mean() - 0.8) < 0.01
    if kind in ("genes", "genes_and_conditions"):
        for code in (TRAIN, VALIDATION, TEST):
            genes = (split == code).any(axis=1)
            others = (split[genes] != code) & (split[genes] != UNUSED)
            assert not others.any(), "a gene appears in two splits"
    if kind in ("conditions", "genes_and_conditions"):
        for code in (TRAIN, VALIDATION, TEST):
            columns = (split == code).any(axis=0)
            others = (split[:, columns] != code) & (split[:, columns] != UNUSED)
            assert not others.any(), "a condition appears in two splits"


def test_blocks_cover_each_training_pair_once_and_match_a_naive_table(data_config):
    dataset = build_dataset(data_config)
    split = dataset.split(data_config)
    labels = dataset.labels("regression", data_config)
    batches = BlockBatches(dataset.sequences, dataset.regulator_inputs(), labels, split, TRAIN,
                           block_genes=7, block_conditions=5, seed=1)
    # a naive materialised table of the training pairs, as the original code built it
    genes, conditions = np.nonzero((split == TRAIN) & ~np.isnan(labels))
    naive = {(g, c): (dataset.sequences[g].astype(np.float32), dataset.regulator_inputs()[c], labels[g, c])
             for g, c in zip(genes, conditions)}
    seen = set()
    for index in range(len(batches)):
        inputs, block_labels = batches[index]
        rows, columns = batches.block(index)
        for i, g in enumerate(rows):
            for j, c in enumerate(columns):
                if np.isnan(block_labels[i, j]):
                    assert (g, c) not in naive
                    continue
                sequence, regulators, label = naive[(g, c)]
                np.testing.assert_array_equal(inputs["sequence"][i], sequence)
                np.testing.assert_array_equal(inputs["regulators"][j], regulators)
                assert block_labels[i, j] == label
                assert (g, c) not in seen
                seen.add((g, c))
    assert seen == set(naive)
    first_order = batches.order.copy()
    batches.on_epoch_end()
    assert not np.array_equal(first_order, batches.order) or len(first_order) == 1


def test_genes_sharing_one_promoter_fall_in_the_same_split():
    from deepreg.data.splits import make_split, promoter_groups

    rng = np.random.default_rng(5)
    sequences = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (200, 30))]
    sequences[100:140] = sequences[0]  # 41 genes with one promoter, as duplicated ORFs have
    groups = promoter_groups(sequences)
    for kind in ("genes", "genes_and_conditions"):
        split = make_split(200, 10, kind, gene_groups=groups)
        genes = np.where((split == -1).all(axis=1), -1, split.max(axis=1))
        assert len(set(genes[[0, *range(100, 140)]]) - {-1}) == 1
    unique = promoter_groups(np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (50, 30))])
    assert (make_split(50, 4, "genes", gene_groups=unique) == make_split(50, 4, "genes")).all()
