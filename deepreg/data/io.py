"""Every file format the project reads or writes: PCL, FASTA, id lists, JASPAR matrices and MEME files.

Reading. Any input may be gzip-compressed (recognised by its first two bytes, not its name). Text is
UTF-8 (a byte-order mark is dropped); bytes that are not UTF-8, a truncated gzip stream, a missing
file and malformed content are refused with a `DeepRegError` naming the file and, where there is
one, the line. Readers of sources that may predate UTF-8 pass `fallback=LEGACY_ENCODING` (latin-1).

Writing. Files are written through `deepreg._files` (checked partial file, then renamed), so no
partial output ever sits under a final name. Gzip output is reproducible: time stamp 0, no file
name, a fixed level and header, so equal content gives equal bytes.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import re
import struct
import warnings
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from deepreg._files import write_bytes_atomically
from deepreg.errors import DeepRegError

GZIP_MAGIC = b"\x1f\x8b"

# --------------------------------------------------------------------------------------------------
# Bytes and text
# --------------------------------------------------------------------------------------------------


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a file, decompressed when they are gzip."""
    path = Path(path)
    if not path.is_file():
        raise DeepRegError(f"{path}: no such file")
    data = path.read_bytes()
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as error:
        raise DeepRegError(f"{path}: truncated or corrupt gzip file ({error}); copy or compress it again") from None


def read_text(path: str | Path, fallback: str | None = None) -> str:
    """The text of a UTF-8 file (see the module docstring); `fallback` decodes what is not UTF-8."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if fallback is not None:
            return data.decode(fallback)
        line = data.count(b"\n", 0, error.start) + 1
        raise DeepRegError(f"{path}: line {line}: byte 0x{data[error.start]:02x} is not UTF-8 text "
                           "(expected a UTF-8 file; convert it, e.g. iconv -f latin1 -t utf-8)") from None


def open_text(path: str | Path, newline: str | None = "") -> io.StringIO:
    """A file's text (see `read_text`) as a stream; `newline` as for `open` ("": endings kept as written)."""
    return io.StringIO(read_text(path), newline=newline)


def read_lines(path: str | Path, fallback: str | None = None) -> list[str]:
    """Lines without their '\\n' or '\\r\\n'; every other character, white space included, is kept."""
    return split_lines(read_text(path, fallback))


def split_lines(text: str) -> list[str]:
    """Text cut at '\\n' only (a final newline ends the last line), one trailing '\\r' removed per line.

    Unlike `str.splitlines` no other character ends a line, so verbatim fields survive."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------

# The OS byte of a gzip header. Python's GzipFile writes 255 (unknown) and zlib's own gzip wrapper 3
# (Unix); the yeast bundle was first written one way and the simulated one the other, and each keeps
# its header so the shipped files stay byte-identical.
UNKNOWN_OS, UNIX_OS = 255, 3
GZIP_LEVEL = 9


def gzip_bytes(data: bytes, level: int = GZIP_LEVEL, os_byte: int = UNKNOWN_OS) -> bytes:
    """Gzip with time stamp 0 and no file name: equal data, level and OS byte give equal bytes."""
    extra_flags = 2 if level == 9 else 4 if level == 1 else 0  # "best" and "fastest", as GzipFile marks them
    header = struct.pack("<BBBBLBB", 0x1F, 0x8B, 8, 0, 0, extra_flags, os_byte)
    trailer = struct.pack("<LL", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return header + zlib.compress(data, level=level, wbits=-15) + trailer


def write_bytes(path: str | Path, data: bytes, what: str = "file") -> Path:
    """Write bytes through a checked partial file (see `deepreg._files`); folders are made as needed."""
    return write_bytes_atomically(path, data, what)


def write_text(path: str | Path, text: str, what: str = "file") -> Path:
    """Write UTF-8 text; a name ending in `.gz` is written as reproducible gzip (`gzip_bytes`)."""
    path = Path(path)
    data = text.encode("utf-8")
    return write_bytes(path, gzip_bytes(data) if path.suffix == ".gz" else data, what)


# --------------------------------------------------------------------------------------------------
# PCL expression matrices (and plain genes x conditions TSV/CSV)
# --------------------------------------------------------------------------------------------------

PCL_HEADER = ("UID", "NAME", "GWEIGHT")
MISSING_TOKENS = ("", "NA", "NaN", "nan", "null")
QUOTED_FIELD = re.compile(r'^\s*"(.*)"\s*$')
SEPARATOR_NAMES = {"\t": "tab", ",": "comma"}
FLOAT32_MAX = float(np.finfo(np.float32).max)
# The encoding tried where sources may predate UTF-8 (the Stanford compendium files, reference tables).
LEGACY_ENCODING = "latin-1"


@dataclasses.dataclass(frozen=True)
class PclTable:
    """A PCL file as written: ids stripped, NAME and GWEIGHT text and condition names verbatim.

    `header` holds the leading column names (UID, and NAME and GWEIGHT where the file has them),
    `values` float64 with NaN for a missing cell; without a NAME or GWEIGHT column those are "".
    """

    header: tuple[str, ...]
    conditions: tuple[str, ...]
    uids: tuple[str, ...]
    names: tuple[str, ...]
    gweights: tuple[str, ...]
    values: np.ndarray


def read_pcl(path: str | Path, source: bool = False) -> PclTable:
    """Read a PCL file (UID, NAME, GWEIGHT, conditions...), one without GWEIGHT, or a plain table.

    Tab- or comma-separated (R's `write.csv` quotes are removed); an EWEIGHT row is skipped; blank
    lines are ignored; blank and NA cells are missing. Training inputs (`source=False`) must be
    UTF-8 and hold values that are finite in float32. A compendium source for a bundle
    (`source=True`) must be a full PCL, may be latin-1, and holds any finite float64; its refusals
    word the expectation as the bundle builder always has.
    """
    lines = read_lines(path, fallback=LEGACY_ENCODING if source else None)
    if not lines or not lines[0]:
        raise DeepRegError(f"{path}: line 1: empty file, expected a header row")
    separator = _separator(lines[0], path)
    quoted = '"' in lines[0]
    header = _fields(lines[0], separator, quoted)
    first = _first_value_column(header)
    if source and (first != 3 or len(header) < 4):
        raise DeepRegError(f"{path}: line 1: expected columns UID, NAME, GWEIGHT and at least one condition, "
                           f"got {header[:4]}")
    if len(header) <= first:
        raise DeepRegError(f"{path}: line 1: expected at least one condition column after {header[:first]}")
    rows, numbers = _rows(lines, separator, quoted, len(header), first > 1, path, source)
    uids = tuple(fields[0].strip() for fields in rows)
    first_line: dict[str, int] = {}
    for uid, number in zip(uids, numbers):
        _note_id(first_line, uid, number, path, "gene")
    values = _parse_values([fields[first:] for fields in rows], numbers, header[first:], first, path, source)
    return PclTable(header=tuple(header[:first]), conditions=tuple(header[first:]), uids=uids,
                    names=tuple(fields[1] if first > 1 else "" for fields in rows),
                    gweights=tuple(fields[2] if first > 2 else "" for fields in rows), values=values)


def _separator(header_line: str, path) -> str:
    """Tab, else comma; a header with neither but with semicolons gets a hint instead of a one-field header."""
    if "\t" in header_line:
        return "\t"
    if "," in header_line:
        return ","
    if ";" in header_line:
        raise DeepRegError(f"{path}: line 1: the header has no tab or comma but has semicolons; expected a "
                           "tab- or comma-separated file (save it as tab-separated text)")
    return "\t"


def _fields(line: str, separator: str, quoted: bool) -> list[str]:
    fields = line.split(separator)
    return [_unquote(field) for field in fields] if quoted else fields


def _unquote(field: str) -> str:
    """A field as R's write.csv writes it ("NAME") without its quotes."""
    match = QUOTED_FIELD.match(field)
    return match.group(1).replace('""', '"') if match else field


def _first_value_column(header: list[str]) -> int:
    """3 for a PCL file (UID, NAME, GWEIGHT), 2 for a PCL without GWEIGHT (UID, NAME), else 1."""
    leading = tuple(h.strip().upper() for h in header[1:3])
    if leading == PCL_HEADER[1:]:
        return 3
    return 2 if leading[:1] == PCL_HEADER[1:2] else 1


def _rows(lines: list[str], separator: str, quoted: bool, expected: int, is_pcl: bool, path,
          source: bool) -> tuple[list[list[str]], list[int]]:
    """The fields of each gene row and its line number; EWEIGHT rows and blank lines are left out."""
    rows, numbers = [], []
    fields_word = f"{SEPARATOR_NAMES[separator]}-separated fields" if source else "fields"
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = _fields(line, separator, quoted)
        if len(fields) != expected:
            raise DeepRegError(f"{path}: line {number}: expected {expected} {fields_word} as in the header, "
                               f"got {len(fields)}")
        if is_pcl and fields[0].strip().upper() == "EWEIGHT":
            continue
        rows.append(fields)
        numbers.append(number)
    if not rows:
        raise DeepRegError(f"{path}: line 2: no gene rows after the header (expected one row per gene)")
    return rows, numbers


def _note_id(first_line: dict[str, int], identifier: str, number: int, path, what: str, empty_hint: str = "") -> None:
    """Record that `identifier` is given on line `number` of `path`; refuse an empty id and one given before.

    Every reader of ids (PCL gene rows, FASTA headers, two-column promoters, id lists) refuses with
    the same words: "PATH: line N: WHAT 'ID' already given on line M".
    """
    if not identifier:
        raise DeepRegError(f"{path}: line {number}: empty {what} id{empty_hint}")
    if identifier in first_line:
        raise DeepRegError(f"{path}: line {number}: {what} '{identifier}' already given on line "
                           f"{first_line[identifier]}")
    first_line[identifier] = number


def _parse_values(cells: list[list[str]], numbers: list[int], conditions: list[str], first_column: int,
                  path, source: bool) -> np.ndarray:
    """All cells at once as float64; text, inf, and (for training inputs) values beyond float32 refused."""
    text = np.char.strip(np.array(cells, dtype=str))
    missing = np.isin(text, MISSING_TOKENS)
    text[missing] = "nan"
    try:
        values = text.astype(np.float64)
    except ValueError:
        values = np.array([[_float_or_nan(token) for token in row] for row in text.tolist()], dtype=np.float64)
    not_numbers = ~missing & np.isnan(values)
    out_of_range = ~missing & (np.isinf(values) if source else np.abs(values) > FLOAT32_MAX)
    checks = ([(not_numbers | out_of_range, "a finite number or a blank")] if source else
              [(not_numbers, "a number or a blank"), (out_of_range, "a finite log-ratio")])
    for bad, expected in checks:
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise DeepRegError(f"{path}: line {numbers[row]}, condition '{conditions[column]}': expected {expected} "
                               f"in column {column + first_column + 1}, got {cells[row][column].strip()!r}")
    return values


def _float_or_nan(token: str) -> float:
    try:
        return float(token)
    except ValueError:
        return float("nan")


def pcl_text(uids: Sequence[str], names: Sequence[str], gweights: Sequence[str], conditions: Sequence[str],
             cells: Iterable[Sequence[str]], header: Sequence[str] = PCL_HEADER) -> str:
    """PCL text: the header, then per gene its UID, NAME, GWEIGHT and cells (text, "" = missing)."""
    lines = ["\t".join([*header, *conditions])]
    lines += ["\t".join([uid, name, weight, *row]) for uid, name, weight, row in zip(uids, names, gweights, cells)]
    return "\n".join(lines) + "\n"


def shortest_cells(values: np.ndarray) -> list[list[str]]:
    """Each value as the shortest text that reads back to the same float64 (Python's repr); NaN -> ""."""
    return [["" if value != value else repr(value) for value in row] for row in values.tolist()]


def fixed_cells(values: np.ndarray, decimals: int) -> np.ndarray:
    """Each value with `decimals` decimals; NaN -> ""."""
    cells = np.char.mod(f"%.{decimals}f", values).astype(object)
    cells[np.isnan(values)] = ""
    return cells


# --------------------------------------------------------------------------------------------------
# Sequences: FASTA and ID<TAB>SEQUENCE
# --------------------------------------------------------------------------------------------------

FASTA_LINE_WIDTH = 60
NOT_IUPAC = re.compile(r"[^ACGTNRYSWKMBDHV]", re.IGNORECASE)


def read_promoters(path: str | Path) -> dict[str, str]:
    """Promoters from FASTA (`>ID description`) or two-column `ID<TAB>SEQUENCE` text, upper-cased.

    Letters outside the IUPAC nucleotide code are refused."""
    lines = read_text(path).splitlines()
    if not any(line.strip() for line in lines):
        raise DeepRegError(f"{path}: empty file, expected FASTA or ID<TAB>SEQUENCE lines")
    if any(line.startswith(">") for line in lines):
        return parse_fasta(lines, path, what="promoter", check_letters=True)
    return _parse_two_columns(lines, path)


def read_fasta(path: str | Path, what: str = "sequence") -> dict[str, str]:
    """A FASTA file as id -> upper-case sequence (any letters)."""
    return parse_fasta(read_text(path).splitlines(), path, what=what)


def parse_fasta(lines: Sequence[str], path, first_line: int = 1, what: str = "sequence",
                check_letters: bool = False) -> dict[str, str]:
    """FASTA lines (numbered from `first_line`) as id -> upper-case sequence, in file order.

    A record without an id or sequence, a repeated id, and sequence before the first header are
    refused; `check_letters` refuses letters outside the IUPAC nucleotide code."""
    records: dict[str, list[str]] = {}
    starts: dict[str, int] = {}
    current: str | None = None
    for number, line in enumerate(lines, start=first_line):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            current = _fasta_id(line, path, number, what, starts)
            records[current] = []
            continue
        if current is None:
            raise DeepRegError(f"{path}: line {number}: sequence before the first '>' header (malformed FASTA)")
        if check_letters:
            _check_letters(line, path, number)
        records[current].append(line.upper())
    if not records:
        raise DeepRegError(f"{path}: no FASTA records found (expected '>id' lines)")
    for identifier, chunks in records.items():
        if not chunks:
            raise DeepRegError(f"{path}: line {starts[identifier]}: {what} '{identifier}' has no sequence")
    return {identifier: "".join(chunks) for identifier, chunks in records.items()}


def _fasta_id(line: str, path, number: int, what: str, starts: dict[str, int]) -> str:
    """The id of a '>' header, noted in `starts` (its line)."""
    words = line[1:].split()
    if not words:
        raise DeepRegError(f"{path}: line {number}: FASTA header without an id")
    _note_id(starts, words[0], number, path, what)
    return words[0]


def _parse_two_columns(lines: Sequence[str], path) -> dict[str, str]:
    records: dict[str, str] = {}
    starts: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise DeepRegError(f"{path}: line {number}: expected FASTA or 'ID<TAB>SEQUENCE', "
                               f"got {len(fields)} field(s)")
        identifier, sequence = fields[0].strip(), fields[1].strip()
        _note_id(starts, identifier, number, path, "promoter")
        _check_letters(sequence, path, number)
        records[identifier] = sequence.upper()
    return records


def _check_letters(sequence: str, path, number: int) -> None:
    bad = NOT_IUPAC.search(sequence)
    if bad:
        raise DeepRegError(f"{path}: line {number}: {bad.group()!r} is not a nucleotide letter "
                           "(expected A, C, G, T, N or IUPAC codes)")


def fasta_text(records: Mapping[str, str], line_width: int = FASTA_LINE_WIDTH) -> str:
    """`>ID` headers with the sequence wrapped at `line_width` letters, in the mapping's order."""
    lines = []
    for identifier, sequence in records.items():
        lines.append(f">{identifier}")
        lines.extend(sequence[i:i + line_width] for i in range(0, len(sequence), line_width))
    return "\n".join(lines) + "\n" if lines else ""


def write_fasta(path: str | Path, records: Mapping[str, str], line_width: int = FASTA_LINE_WIDTH) -> Path:
    """Write FASTA (`fasta_text`); a `.gz` name gives reproducible gzip."""
    return write_text(path, fasta_text(records, line_width), "FASTA file")


# --------------------------------------------------------------------------------------------------
# Id lists: one id per line
# --------------------------------------------------------------------------------------------------


def read_numbered_ids(path: str | Path, what: str = "regulator") -> tuple[tuple[str, int], ...]:
    """(id, line number) for each id of a list: the first tab-separated field of each line.

    Blank lines and '#' comments are skipped; an empty first field and a repeated id are refused."""
    ids: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        identifier = line.split("\t")[0].strip()
        _note_id(seen, identifier, number, path, what, empty_hint=" (expected the id in the first field)")
        ids.append((identifier, number))
    if not ids:
        raise DeepRegError(f"{path}: no {what} ids found (expected one id per line)")
    return tuple(ids)


def read_id_list(path: str | Path, what: str = "regulator") -> tuple[str, ...]:
    """The ids of a list, in file order (see `read_numbered_ids`)."""
    return tuple(identifier for identifier, _ in read_numbered_ids(path, what))


# --------------------------------------------------------------------------------------------------
# Motifs: JASPAR (pyjaspar's bundled database) and MEME files
# --------------------------------------------------------------------------------------------------

# Pinned so that a simulated dataset generated today is byte-identical to one generated later.
JASPAR_RELEASE = "JASPAR2026"
ALPHABET = "ACGT"
UNIFORM_BACKGROUND = (0.25, 0.25, 0.25, 0.25)


@dataclasses.dataclass(frozen=True)
class Motif:
    """A JASPAR position frequency matrix as probabilities, rows = positions, columns = A, C, G, T."""

    matrix_id: str
    name: str
    probabilities: np.ndarray
    n_sites: int

    @property
    def label(self) -> str:
        """'MA0341.1 MSN2': the matrix id and TF name, as MEME files and TomTom tables name a motif."""
        return f"{self.matrix_id} {self.name}"

    @property
    def width(self) -> int:
        return self.probabilities.shape[0]

    @property
    def consensus(self) -> str:
        return "".join(ALPHABET[i] for i in self.probabilities.argmax(axis=1))

    def log_odds(self, background: np.ndarray, pseudo: float = 1e-3) -> np.ndarray:
        """Natural-log odds of each base at each position against a background composition."""
        probabilities = (self.probabilities + pseudo) / (1 + 4 * pseudo)
        return np.log(probabilities / np.asarray(background)[None, :])


@functools.lru_cache(maxsize=8)
def read_jaspar(release: str = JASPAR_RELEASE, tax_group: str | None = "fungi", collection: str = "CORE",
                pseudocount: float = 0.0) -> tuple[Motif, ...]:
    """The JASPAR matrices of a release, collection and tax group, read offline through pyjaspar.

    Each position's probabilities are (count + pseudocount) / (total + 4 pseudocount): 0 keeps the
    matrix as published (what simulated sites are drawn from); a small pseudocount keeps TomTom's
    log-odds finite. The arrays are read-only (the result is cached)."""
    from pyjaspar import jaspardb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = jaspardb(release=release).fetch_motifs(collection=collection,
                                                         tax_group=[tax_group] if tax_group else None)
    return tuple(_to_motif(record, pseudocount) for record in records)


def _to_motif(record, pseudocount: float) -> Motif:
    counts = np.array([record.counts[base] for base in ALPHABET], dtype=np.float64).T
    totals = counts.sum(axis=1, keepdims=True)
    probabilities = (counts + pseudocount) / (totals + 4 * pseudocount)
    probabilities.setflags(write=False)
    return Motif(matrix_id=record.matrix_id, name=record.name, probabilities=probabilities,
                 n_sites=int(round(float(totals.max()))))


def fetch_fungi_motifs(matrix_ids: Iterable[str]) -> dict[str, Motif]:
    """The JASPAR CORE fungi motifs (release `JASPAR_RELEASE`) with these matrix ids, keyed by id."""
    wanted = list(matrix_ids)
    available = {motif.matrix_id: motif for motif in read_jaspar()}
    unknown = [matrix_id for matrix_id in wanted if matrix_id not in available]
    if unknown:
        raise DeepRegError(f"{JASPAR_RELEASE} CORE fungi has no matrix {', '.join(unknown)}")
    return {matrix_id: available[matrix_id] for matrix_id in wanted}


def meme_text(motifs: Mapping[str, np.ndarray], background: Iterable[float] = UNIFORM_BACKGROUND,
              sites: Mapping[str, int] | None = None) -> str:
    """W x 4 PWMs in MEME minimal format, version 4, which TomTom and FIMO read.

    Each motif is named by its key; `sites` gives its site count (100 where not given)."""
    frequencies = " ".join(f"{base} {value:.3f}" for base, value in zip(ALPHABET, background))
    lines = ["MEME version 4", "", f"ALPHABET= {ALPHABET}", "", "strands: + -", "",
             "Background letter frequencies", frequencies, ""]
    for name, pwm in motifs.items():
        pwm = np.asarray(pwm, dtype=np.float64)
        lines += [f"MOTIF {name}",
                  f"letter-probability matrix: alength= 4 w= {len(pwm)} nsites= {(sites or {}).get(name, 100)} E= 0"]
        lines += [" " + "  ".join(f"{value:.6f}" for value in row) for row in pwm]
        lines.append("")
    return "\n".join(lines)


def write_meme(path: str | Path, motifs: Mapping[str, np.ndarray], *, background=UNIFORM_BACKGROUND,
               sites: Mapping[str, int] | None = None) -> Path:
    """Write W x 4 PWMs as a MEME file (`meme_text`)."""
    return write_text(path, meme_text(motifs, background, sites), "MEME motif file")


def read_meme(path: str | Path) -> dict[str, np.ndarray]:
    """Motifs of a MEME-format file as {'ID NAME': W x 4 PWM}."""
    from memelite.io import read_meme as read_with_memelite

    path = Path(path)
    if not path.is_file():
        raise DeepRegError(f"motif file {path}: no such file")
    motifs = {name: np.asarray(pwm).T for name, pwm in read_with_memelite(str(path)).items()}
    if not motifs:
        raise DeepRegError(f"motif file {path}: no MEME motifs found")
    return motifs
