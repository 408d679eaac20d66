"""Known yeast motifs from JASPAR, read offline through pyjaspar, and written in MEME format.

pyjaspar ships the JASPAR SQLite database inside its wheel, so fetching needs no network. The release
is pinned so that a simulated dataset generated today is byte-identical to one generated later.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable

import numpy as np

from deepreg.errors import DeepRegError

JASPAR_RELEASE = "JASPAR2026"
ALPHABET = "ACGT"


@dataclasses.dataclass(frozen=True)
class Motif:
    """A JASPAR position frequency matrix as probabilities, rows = positions, columns = A, C, G, T."""

    matrix_id: str
    name: str
    probabilities: np.ndarray
    n_sites: int

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


@functools.lru_cache(maxsize=1)
def _fungi_core_motifs() -> tuple[Motif, ...]:
    from pyjaspar import jaspardb

    fetched = jaspardb(release=JASPAR_RELEASE).fetch_motifs(collection="CORE", tax_group=["fungi"])
    return tuple(_to_motif(record) for record in fetched)


def _to_motif(record) -> Motif:
    counts = np.array([record.counts[base] for base in ALPHABET], dtype=np.float64).T
    totals = counts.sum(axis=1, keepdims=True)
    probabilities = counts / totals
    probabilities.setflags(write=False)
    return Motif(matrix_id=record.matrix_id, name=record.name, probabilities=probabilities,
                 n_sites=int(round(float(totals.max()))))


def fetch_fungi_motifs(matrix_ids: Iterable[str]) -> dict[str, Motif]:
    """The JASPAR CORE fungi motifs with these matrix ids (e.g. `MA0341.1`), keyed by id."""
    wanted = list(matrix_ids)
    available = {motif.matrix_id: motif for motif in _fungi_core_motifs()}
    unknown = [matrix_id for matrix_id in wanted if matrix_id not in available]
    if unknown:
        raise DeepRegError(f"{JASPAR_RELEASE} CORE fungi has no matrix {', '.join(unknown)}")
    return {matrix_id: available[matrix_id] for matrix_id in wanted}


def meme_text(motifs: Iterable[Motif], background: Iterable[float]) -> str:
    """Motifs in MEME minimal format, version 4; each is named `<matrix id> <TF name>`."""
    frequencies = " ".join(f"{base} {value:.3f}" for base, value in zip(ALPHABET, background))
    lines = ["MEME version 4", "", f"ALPHABET= {ALPHABET}", "", "strands: + -", "",
             "Background letter frequencies", frequencies, ""]
    for motif in motifs:
        lines += [f"MOTIF {motif.matrix_id} {motif.name}",
                  f"letter-probability matrix: alength= 4 w= {motif.width} nsites= {motif.n_sites} E= 0"]
        lines += [" " + "  ".join(f"{value:.6f}" for value in row) for row in motif.probabilities]
        lines.append("")
    return "\n".join(lines)
