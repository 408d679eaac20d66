"""Readers for the three inputs: an expression matrix, promoter sequences and a regulator list.

Every reader refuses malformed input with a `DeepRegError` naming the file, the line and what was
expected. Files may be gzip-compressed (detected from the content, not the name).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from deepreg.errors import DeepRegError

PCL_LEADING_COLUMNS = ("NAME", "GWEIGHT")
IUPAC_LETTERS = re.compile(r"[^ACGTNRYSWKMBDHV]", re.IGNORECASE)
SYMBOL = re.compile(r"[A-Z][A-Z0-9-]{1,15}")
QUOTED_FIELD = r'^\s*"(.*)"\s*$'
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class ExpressionMatrix:
    """Genes x conditions log-ratios as read, with verbatim condition names; NaN marks a missing cell."""

    genes: tuple[str, ...]
    conditions: tuple[str, ...]
    values: np.ndarray
    names: tuple[str, ...]


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file (a byte-order mark is dropped), transparently decompressing gzip.

    A truncated or corrupt gzip stream and bytes that are not UTF-8 are refused with the file (and
    the line of the first bad byte), not left to surface as a decoder's traceback.
    """
    path = Path(path)
    if not path.is_file():
        raise DeepRegError(f"{path}: no such file")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as error:
            raise DeepRegError(f"{path}: truncated or corrupt gzip file ({error}); copy or compress it again") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DeepRegError(f"{path}: line {line}: byte 0x{data[error.start]:02x} is not UTF-8 text "
                           "(expected a UTF-8 file; convert it, e.g. iconv -f latin1 -t utf-8)") from None


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a text file (see `read_text`) as a stream; line endings are kept as written."""
    return io.StringIO(read_text(path), newline="")


def read_expression(path: str | Path) -> ExpressionMatrix:
    """Read a PCL file (UID, NAME, GWEIGHT, conditions...) or a plain genes x conditions TSV/CSV.

    Condition names are kept verbatim: duplicated headers and trailing spaces stay as they are.
    An `EWEIGHT` row, as some PCL files have, is skipped.
    """
    with open_text(path) as handle:
        header_line = handle.readline().rstrip("\r\n")
        if not header_line:
            raise DeepRegError(f"{path}: line 1: empty file, expected a header row")
        separator = _separator(header_line, path)
        body = handle.read()
    quoted = '"' in header_line
    header = [_unquote(field) for field in header_line.split(separator)] if quoted else header_line.split(separator)
    first_value_column = _first_value_column(header)
    is_pcl = first_value_column > 1
    conditions = tuple(header[first_value_column:])
    if not conditions:
        raise DeepRegError(f"{path}: line 1: expected at least one condition column after {header[:first_value_column]}")
    if not body.strip():
        raise DeepRegError(f"{path}: line 2: no gene rows after the header (expected one row per gene)")
    _check_field_counts(body, separator, len(header), path)
    table = pd.read_csv(io.StringIO(body), sep=separator, header=None, dtype=str, keep_default_na=False,
                        na_filter=False, engine="c", quoting=3)
    if quoted:
        table = table.apply(lambda column: column.str.replace(QUOTED_FIELD, r"\1", regex=True))
    table = table[table.iloc[:, 0].str.upper() != "EWEIGHT"] if is_pcl else table
    genes = tuple(table.iloc[:, 0].str.strip())
    names = tuple(table.iloc[:, 1].str.strip()) if is_pcl else ("",) * len(genes)
    values = _parse_numbers(table.iloc[:, first_value_column:], path, conditions, table.index.to_numpy(),
                            first_value_column)
    _refuse_duplicates(genes, path, "gene", offset=2)
    return ExpressionMatrix(genes=genes, conditions=conditions, values=values, names=names)


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


def _unquote(field: str) -> str:
    """A field as R's write.csv writes it ("NAME") without its quotes."""
    text = field.strip()
    return text[1:-1].replace('""', '"') if len(text) >= 2 and text[0] == text[-1] == '"' else field


def _first_value_column(header: list[str]) -> int:
    """3 for a PCL file (UID, NAME, GWEIGHT), 2 for a PCL without GWEIGHT (UID, NAME), else 1."""
    leading = tuple(h.strip().upper() for h in header[1:3])
    if leading == PCL_LEADING_COLUMNS:
        return 3
    return 2 if leading[:1] == PCL_LEADING_COLUMNS[:1] else 1


def _check_field_counts(body: str, separator: str, expected: int, path) -> None:
    for number, line in enumerate(body.split("\n"), start=2):
        line = line.rstrip("\r")
        if line and line.count(separator) + 1 != expected:
            raise DeepRegError(f"{path}: line {number}: expected {expected} fields as in the header, "
                               f"got {line.count(separator) + 1}")


def _parse_numbers(cells: pd.DataFrame, path, conditions, row_index: np.ndarray, first_column: int) -> np.ndarray:
    """Float32 log-ratios; blanks and NA are missing. Text and values that are not finite in float32
    (inf, -Infinity, 1e308) are refused with their line and column."""
    stripped = cells.apply(lambda column: column.str.strip())
    numbers = stripped.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    blank = (stripped == "").to_numpy() | stripped.isin(["NA", "NaN", "nan", "null"]).to_numpy()
    for bad, expected in ((np.isnan(numbers) & ~blank, "a number or a blank"),
                          (np.abs(np.nan_to_num(numbers, nan=0.0)) > FLOAT32_MAX, "a finite log-ratio")):
        if bad.any():
            row, column = np.argwhere(bad)[0]
            line = int(row_index[row]) + 2
            raise DeepRegError(f"{path}: line {line}, condition '{conditions[column]}': expected {expected} "
                               f"in column {column + first_column + 1}, got {stripped.iat[row, column]!r}")
    return numbers.astype(np.float32)


def _refuse_duplicates(ids, path, what: str, offset: int) -> None:
    seen: dict[str, int] = {}
    for position, identifier in enumerate(ids):
        if not identifier:
            raise DeepRegError(f"{path}: line {position + offset}: empty {what} id")
        if identifier in seen:
            raise DeepRegError(f"{path}: line {position + offset}: {what} '{identifier}' already given on line {seen[identifier] + offset}")
        seen[identifier] = position


def read_promoters(path: str | Path) -> dict[str, str]:
    """Read promoters from FASTA (`>ID description`) or two-column `ID<TAB>SEQUENCE` text.

    Sequences are upper-cased; letters outside the IUPAC nucleotide code are refused.
    """
    with open_text(path) as handle:
        text = handle.read()
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DeepRegError(f"{path}: empty file, expected FASTA or ID<TAB>SEQUENCE lines")
    if any(line.startswith(">") for line in lines):
        return _parse_fasta(lines, path)
    return _parse_two_columns(lines, path)


def _parse_fasta(lines: list[str], path) -> dict[str, str]:
    records: dict[str, list[str]] = {}
    starts: dict[str, int] = {}
    current: str | None = None
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            identifier = line[1:].split()[0] if line[1:].split() else ""
            if not identifier:
                raise DeepRegError(f"{path}: line {number}: FASTA header without an id")
            if identifier in records:
                raise DeepRegError(f"{path}: line {number}: promoter '{identifier}' already given on line {starts[identifier]}")
            records[identifier], starts[identifier], current = [], number, identifier
            continue
        if current is None:
            raise DeepRegError(f"{path}: line {number}: sequence before the first '>' header (malformed FASTA)")
        _check_letters(line, path, number)
        records[current].append(line.upper())
    for identifier, chunks in records.items():
        if not chunks:
            raise DeepRegError(f"{path}: line {starts[identifier]}: promoter '{identifier}' has no sequence")
    return {identifier: "".join(chunks) for identifier, chunks in records.items()}


def _parse_two_columns(lines: list[str], path) -> dict[str, str]:
    records: dict[str, str] = {}
    starts: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise DeepRegError(f"{path}: line {number}: expected FASTA or 'ID<TAB>SEQUENCE', got {len(fields)} field(s)")
        identifier, sequence = fields[0].strip(), fields[1].strip()
        if identifier in records:
            raise DeepRegError(f"{path}: line {number}: promoter '{identifier}' already given on line {starts[identifier]}")
        _check_letters(sequence, path, number)
        records[identifier], starts[identifier] = sequence.upper(), number
    return records


def _check_letters(sequence: str, path, number: int) -> None:
    bad = IUPAC_LETTERS.search(sequence)
    if bad:
        raise DeepRegError(f"{path}: line {number}: {bad.group()!r} is not a nucleotide letter (expected A, C, G, T, N or IUPAC codes)")


def read_id_list(path: str | Path, what: str = "regulator") -> tuple[str, ...]:
    """Read one id per line (first tab-separated field); blank lines and '#' comments are skipped."""
    with open_text(path) as handle:
        lines = handle.read().splitlines()
    ids, numbers = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        ids.append(line.split("\t")[0].strip())
        numbers.append(number)
    if not ids:
        raise DeepRegError(f"{path}: no {what} ids found (expected one id per line)")
    seen: dict[str, int] = {}
    for identifier, number in zip(ids, numbers):
        if identifier in seen:
            raise DeepRegError(f"{path}: line {number}: {what} '{identifier}' already listed on line {seen[identifier]}")
        seen[identifier] = number
    return tuple(ids)


# What gene tables write where a gene has no symbol (the Gasch tables: UNKNOWN for 3,546 ORFs, or the
# first word of "SIMILAR TO ...").
NO_SYMBOL = frozenset({"UNKNOWN", "SIMILAR", "NA", "N/A", "NONE", "-"})


def symbol_from_name(name: str, orf: str) -> str:
    """The gene symbol in a PCL NAME field, or "" when it holds none.

    NAME fields come as 'GCN4', 'YEL009C GCN4 transcription factor' or 'YEL009C simulated': the
    symbol is the first word, other than the ORF id itself, that looks like one (an upper-case
    letter, then upper-case letters, digits or dashes, at most 16).
    """
    for word in re.split(r"[\s|,;]+", name.strip()):
        if word and word.upper() != orf.upper() and word.upper() not in NO_SYMBOL and SYMBOL.fullmatch(word):
            return word
    return ""


def read_gene_symbols(path: str | Path) -> dict[str, str]:
    """Read a gene table with columns UID and GENE (other columns ignored) into ORF -> symbol."""
    with open_text(path) as handle:
        table = pd.read_csv(handle, sep="\t", dtype=str, keep_default_na=False)
    missing = {"UID", "GENE"} - set(table.columns)
    if missing:
        raise DeepRegError(f"{path}: line 1: expected columns UID and GENE, missing {sorted(missing)}")
    return {uid: gene for uid, gene in zip(table["UID"], table["GENE"]) if gene and gene.upper() not in NO_SYMBOL}
