"""The training inputs as the dataset needs them: the expression matrix in float32 and gene symbols.

Files are opened and parsed by `deepreg.data.io` (promoters: `io.read_promoters`, regulator lists:
`io.read_id_list`), which refuses malformed input naming the file, the line and what was expected.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd

from deepreg.data.io import open_text, read_pcl
from deepreg.errors import DeepRegError

SYMBOL = re.compile(r"[A-Z][A-Z0-9-]{1,15}")


@dataclasses.dataclass(frozen=True)
class ExpressionMatrix:
    """Genes x conditions log-ratios as read, with verbatim condition names; NaN marks a missing cell."""

    genes: tuple[str, ...]
    conditions: tuple[str, ...]
    values: np.ndarray
    names: tuple[str, ...]


def read_expression(path: str | Path) -> ExpressionMatrix:
    """Read a PCL file (UID, NAME, GWEIGHT, conditions...) or a plain genes x conditions TSV/CSV.

    Condition names are kept verbatim: duplicated headers and trailing spaces stay as they are.
    An `EWEIGHT` row, as some PCL files have, is skipped; values must be finite in float32.
    """
    table = read_pcl(path)
    return ExpressionMatrix(genes=table.uids, conditions=table.conditions, values=table.values.astype(np.float32),
                            names=tuple(name.strip() for name in table.names))


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
