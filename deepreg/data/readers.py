"""Readers for the three inputs: an expression matrix, promoter sequences and a regulator list.

Every reader refuses malformed input with a `DeepRegError` naming the file, the line and what was
expected. Files may be gzip-compressed (detected from the content, not the name).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from deepreg.errors import DeepRegError

PCL_LEADING_COLUMNS = ("NAME", "GWEIGHT")
IUPAC_LETTERS = re.compile(r"[^ACGTNRYSWKMBDHV]", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class ExpressionMatrix:
    """Genes x conditions log-ratios as read, with verbatim condition names; NaN marks a missing cell."""

    genes: tuple[str, ...]
    conditions: tuple[str, ...]
    values: np.ndarray
    names: tuple[str, ...]


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a text file, transparently decompressing gzip."""
    path = Path(path)
    if not path.is_file():
        raise DeepRegError(f"{path}: no such file")
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_expression(path: str | Path) -> ExpressionMatrix:
    """Read a PCL file (UID, NAME, GWEIGHT, conditions...) or a plain genes x conditions TSV/CSV.

    Condition names are kept verbatim: duplicated headers and trailing spaces stay as they are.
    An `EWEIGHT` row, as some PCL files have, is skipped.
    """
    with open_text(path) as handle:
        header_line = handle.readline().rstrip("\r\n")
        if not header_line:
            raise DeepRegError(f"{path}: line 1: empty file, expected a header row")
        separator = "\t" if "\t" in header_line else ","
        header = header_line.split(separator)
        body = handle.read()
    is_pcl = tuple(h.strip().upper() for h in header[1:3]) == PCL_LEADING_COLUMNS
    first_value_column = 3 if is_pcl else 1
    conditions = tuple(header[first_value_column:])
    if not conditions:
        raise DeepRegError(f"{path}: line 1: expected at least one condition column after {header[:first_value_column]}")
    _check_field_counts(body, separator, len(header), path)
    table = pd.read_csv(io.StringIO(body), sep=separator, header=None, dtype=str, keep_default_na=False,
                        na_filter=False, engine="c", quoting=3)
    table = table[table.iloc[:, 0].str.upper() != "EWEIGHT"] if is_pcl else table
    genes = tuple(table.iloc[:, 0].str.strip())
    names = tuple(table.iloc[:, 1].str.strip()) if is_pcl else ("",) * len(genes)
    values = _parse_numbers(table.iloc[:, first_value_column:], path, conditions, table.index.to_numpy())
    _refuse_duplicates(genes, path, "gene", offset=2)
    return ExpressionMatrix(genes=genes, conditions=conditions, values=values, names=names)


def _check_field_counts(body: str, separator: str, expected: int, path) -> None:
    for number, line in enumerate(body.split("\n"), start=2):
        line = line.rstrip("\r")
        if line and line.count(separator) + 1 != expected:
            raise DeepRegError(f"{path}: line {number}: expected {expected} fields as in the header, "
                               f"got {line.count(separator) + 1}")


def _parse_numbers(cells: pd.DataFrame, path, conditions, row_index: np.ndarray) -> np.ndarray:
    stripped = cells.apply(lambda column: column.str.strip())
    numbers = stripped.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    blank = (stripped == "").to_numpy() | stripped.isin(["NA", "NaN", "nan", "null"]).to_numpy()
    bad = np.isnan(numbers) & ~blank
    if bad.any():
        row, column = np.argwhere(bad)[0]
        line = int(row_index[row]) + 2
        raise DeepRegError(f"{path}: line {line}, condition '{conditions[column]}': "
                           f"expected a number or a blank, got {stripped.iat[row, column]!r}")
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


def read_gene_symbols(path: str | Path) -> dict[str, str]:
    """Read a gene table with columns UID and GENE (other columns ignored) into ORF -> symbol."""
    with open_text(path) as handle:
        table = pd.read_csv(handle, sep="\t", dtype=str, keep_default_na=False)
    missing = {"UID", "GENE"} - set(table.columns)
    if missing:
        raise DeepRegError(f"{path}: line 1: expected columns UID and GENE, missing {sorted(missing)}")
    return {uid: gene for uid, gene in zip(table["UID"], table["GENE"]) if gene}
