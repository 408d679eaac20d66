"""The simulated compendium: layout, determinism, and that the planted truth is really in the data."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepreg
from deepreg.data.io import fetch_fungi_motifs
from deepreg.data.simulate import BACKGROUND, SimulationConfig, simulate_compendium
from deepreg.errors import DeepRegError

SMALL = SimulationConfig(n_genes=200, n_conditions=20, n_regulators=15, seed=7)
BUNDLE = Path(deepreg.__file__).parent / "bundled" / "simulated"
CODES = {base: index for index, base in enumerate("ACGT")}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return simulate_compendium(tmp_path_factory.mktemp("small"), SMALL)


def read_pcl(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "expression.pcl.gz", sep="\t", index_col=0, dtype={"NAME": str},
                       keep_default_na=False, na_values=[""])


def read_fasta(folder: Path) -> dict[str, str]:
    with gzip.open(folder / "promoters.fa.gz", "rt") as handle:
        records = handle.read().split(">")[1:]
    return {record.split("\n", 1)[0]: record.split("\n", 1)[1].replace("\n", "") for record in records}


def read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def best_log_odds(sequence: str, log_odds: np.ndarray) -> float:
    """Best match of a PWM anywhere in the sequence, either strand (N positions never match)."""
    width = len(log_odds)
    codes = np.array([CODES.get(base, -1) for base in sequence])
    windows = np.lib.stride_tricks.sliding_window_view(codes, width)
    usable = (windows >= 0).all(axis=1)
    columns = np.arange(width)
    clipped = windows.clip(min=0)
    forward = log_odds[columns, clipped].sum(axis=1)
    reverse = log_odds[::-1, ::-1][columns, clipped].sum(axis=1)
    return float(np.where(usable, np.maximum(forward, reverse), -np.inf).max())


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path, dataset):
    again = simulate_compendium(tmp_path / "again", SMALL)
    other = simulate_compendium(tmp_path / "other", SMALL, seed=8)
    assert file_bytes(again) == file_bytes(dataset)
    assert (other / "expression.pcl.gz").read_bytes() != (dataset / "expression.pcl.gz").read_bytes()
    assert (other / "promoters.fa.gz").read_bytes() != (dataset / "promoters.fa.gz").read_bytes()


def test_keywords_and_config_are_the_same_call(tmp_path, dataset):
    from_keywords = simulate_compendium(tmp_path / "keywords", n_genes=200, n_conditions=20, n_regulators=15,
                                        seed=7)
    assert file_bytes(from_keywords) == file_bytes(dataset)


def test_manifest_counts_and_checksums_match_the_files(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    expression = read_pcl(dataset)
    promoters = read_fasta(dataset)
    regulators = (dataset / "regulators.txt").read_text().split()
    counts = manifest["counts"]
    assert manifest["name"] == "simulated" and manifest["generator"] == "deepreg.data.simulate"
    assert manifest["config"]["n_genes"] == 200 and manifest["config"]["seed"] == 7
    assert counts["genes"] == len(expression) == 200
    assert counts["conditions"] == expression.shape[1] - 2 == 20
    assert counts["regulators"] == len(regulators) == 15
    assert counts["missing_cells"] == int(expression.iloc[:, 2:].isna().to_numpy().sum())
    assert counts["genes_without_promoter"] == len(set(expression.index) - set(promoters)) > 0
    for name, entry in manifest["files"].items():
        content = (dataset / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}, name


def test_files_follow_the_bundle_layout(dataset):
    header = gzip.open(dataset / "expression.pcl.gz", "rt").readline().rstrip("\n").split("\t")
    conditions = read_tsv(dataset / "truth" / "conditions.tsv")
    assert header[:3] == ["UID", "NAME", "GWEIGHT"]
    assert header[3:] == conditions["name"].tolist()
    assert set(conditions["program"]) >= {"heat_shock", "oxidative", "nitrogen_starvation", "diauxic", "steady"}
    expression = read_pcl(dataset)
    assert (expression["GWEIGHT"] == 1).all()
    assert expression.index.is_unique and expression.index.is_monotonic_increasing
    assert set(read_tsv(dataset / "genes.tsv")["UID"]) == set(expression.index)
    regulators = (dataset / "regulators.txt").read_text().split()
    assert set(regulators) <= set(expression.index)
    assert "YMR037C" in regulators and expression.loc["YMR037C", "NAME"] == "MSN2"
    assert all(uid.startswith("YSIM") for uid in expression.index.difference(regulators))
    text = gzip.open(dataset / "expression.pcl.gz", "rt").read().splitlines()[1]
    assert all(cell == "" or len(cell.split(".")[1]) == 3 for cell in text.split("\t")[3:])


def test_promoters_are_yeast_like(dataset):
    promoters = read_fasta(dataset)
    lines = gzip.open(dataset / "promoters.fa.gz", "rt").read().splitlines()
    assert max(len(line) for line in lines if not line.startswith(">")) == 60
    assert all(set(sequence) <= set("ACGTN") for sequence in promoters.values())
    lengths = [len(sequence) for sequence in promoters.values()]
    assert max(lengths) == SMALL.promoter_length and min(lengths) < SMALL.promoter_length
    joined = "".join(promoters.values())
    at = (joined.count("A") + joined.count("T")) / len(joined)
    assert 0.58 < at < 0.66


def test_planted_msn2_sites_are_in_the_target_promoters(dataset):
    promoters = read_fasta(dataset)
    targets = read_tsv(dataset / "truth" / "targets.tsv")
    sites = read_tsv(dataset / "truth" / "sites.tsv")
    regulators = read_tsv(dataset / "truth" / "regulators.tsv").set_index("symbol")
    msn2 = fetch_fungi_motifs([regulators.loc["MSN2", "jaspar_id"]])["MA0341.1"]
    log_odds = msn2.log_odds(BACKGROUND)
    msn2_targets = set(targets.loc[targets["regulator_symbol"] == "MSN2", "gene"])
    assert len(msn2_targets) >= 20
    target_scores = [best_log_odds(promoters[gene], log_odds) for gene in msn2_targets]
    other_scores = [best_log_odds(sequence, log_odds) for gene, sequence in promoters.items()
                    if gene not in msn2_targets]
    assert np.mean(target_scores) > np.mean(other_scores) + 1.0
    for site in sites.itertuples():
        assert promoters[site.gene][site.start:site.start + len(site.sequence)] == site.sequence
        assert len(promoters[site.gene]) - site.start - len(site.sequence) == site.distance_to_orf


def test_targets_follow_their_regulator_with_the_planted_sign(dataset):
    expression = read_pcl(dataset).iloc[:, 2:]
    targets = read_tsv(dataset / "truth" / "targets.tsv")
    regulators = read_tsv(dataset / "truth" / "regulators.tsv").set_index("orf")
    single = targets.groupby("gene").filter(lambda rows: rows["regulator_symbol"].isin(["MSN2", "MSN4"]).all()
                                            or len(rows) == 1)
    agree = []
    for row in single.itertuples():
        correlation = expression.loc[row.gene].corr(expression.loc[row.regulator])
        agree.append(np.sign(correlation) == regulators.loc[row.regulator, "sign"] == np.sign(row.effect))
    assert len(agree) >= 40
    assert np.mean(agree) > 0.9


def test_missing_fraction_and_label_balance_are_as_asked(dataset):
    values = read_pcl(dataset).iloc[:, 2:].to_numpy(dtype=float)
    assert abs(np.isnan(values).mean() - SMALL.missing_fraction) < 0.015
    observed = values[~np.isnan(values)]
    assert 0.1 < np.mean(np.abs(observed) >= 0.5) < 0.4
    assert np.mean(observed <= -0.5) > 0.04 and np.mean(observed >= 0.5) > 0.04
    assert np.percentile(np.abs(observed), 99) < 4


def test_impossible_configs_are_refused():
    with pytest.raises(DeepRegError, match="n_regulators"):
        SimulationConfig(n_regulators=1000)
    with pytest.raises(DeepRegError, match="n_genes"):
        SimulationConfig(n_genes=20, n_regulators=15)
    with pytest.raises(DeepRegError, match="missing_fraction"):
        SimulationConfig(missing_fraction=1.5)


def test_bundled_manifest_matches_its_files():
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    assert manifest["config"] == dataclasses.asdict(SimulationConfig())
    assert set(manifest["files"]) == set(file_bytes(BUNDLE)) - {"manifest.json"}
    for name, entry in manifest["files"].items():
        content = (BUNDLE / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}, name


def test_bundled_dataset_is_what_the_generator_makes(tmp_path):
    """Fails when the generator changed without `deepreg simulate --out deepreg/bundled/simulated`."""
    regenerated = simulate_compendium(tmp_path / "default")
    assert file_bytes(regenerated) == file_bytes(BUNDLE)
