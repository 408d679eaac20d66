"""What the sections of the attribution stage share: the run's inputs (`Context`) and `Section` results.

Each section of `stage._compute` is one function in its own module (`_section_regulators`,
`_section_known_targets`, `_section_sequence`, `_section_motifs`, `_section_modisco`,
`_section_knockouts`, `_section_deletions`, `_section_lookup_terms`, `_section_truth`, and the
report's head, `_section_summary`). A section reads the frozen `Context`, writes its tables and
figures, adds its part to the report it is given, and returns a `Section`: its top-level keys of
the run summary, the seconds of its parts, and what later sections need from it (fields of its
own `Section` subclass), passed on explicitly by the stage.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from deepreg.attribution.config import AttributionConfig
from deepreg.errors import DeepRegError


@dataclasses.dataclass(frozen=True)
class Context:
    """The model, the scored genes of the data, the config and the output folders of one stage run."""

    model: Any
    dataset: Any
    data_config: Any
    config: AttributionConfig
    say: Callable[[str], None]
    truth: Any                    # `truth.Truth`, or None
    genes: np.ndarray             # dataset rows scored: all, or a `max_genes` sample
    sequences: np.ndarray         # their promoters, one-hot
    gene_ids: list[str]
    gene_symbols: list[str]
    inputs: np.ndarray            # regulator inputs, conditions x regulators
    background: Any               # the promoter N encoding's background, or None
    tables: Path
    figures: Path
    motifs: Path

    @classmethod
    def create(cls, model, dataset, data_config, config: AttributionConfig, out: Path, say) -> "Context":
        """Output folders under `out`, the truth of the data, and the genes scored (seeded sample)."""
        from deepreg.attribution.truth import load_truth

        tables, figures, motif_dir = out / "tables", out / "figures", out / "motifs"
        for folder in (tables, figures, motif_dir):
            folder.mkdir(parents=True, exist_ok=True)
        background = data_config.background if data_config.n_encoding == "background" else None
        truth = load_truth(config.truth, data_config.bundle)
        rng = np.random.default_rng(config.seed)
        genes = np.arange(dataset.n_genes)
        if config.max_genes and config.max_genes < dataset.n_genes:
            genes = np.sort(rng.choice(dataset.n_genes, config.max_genes, replace=False))
        return cls(model=model, dataset=dataset, data_config=data_config, config=config, say=say, truth=truth,
                   genes=genes, sequences=dataset.sequences[genes], gene_ids=[dataset.genes[g] for g in genes],
                   gene_symbols=[dataset.symbols[g] for g in genes], inputs=dataset.regulator_inputs(),
                   background=background, tables=tables, figures=figures, motifs=motif_dir)

    def named(self, position: int) -> str:
        """The symbol of the scored gene at `position`, else its id."""
        return self.gene_symbols[position] or self.gene_ids[position]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Section:
    """What a section returns: its top-level keys of the run summary and the seconds of its parts."""

    summary: dict = dataclasses.field(default_factory=dict)
    timings: dict = dataclasses.field(default_factory=dict)


def file_safe(name: str) -> str:
    """A gene or TF name as part of a file name: letters, digits, '.', '-' and '_' only (no spaces)."""
    return re.sub(r"[^0-9A-Za-z._-]", "_", name)


def site_mask(sequences, motif: str, known: dict) -> np.ndarray:
    """Sites of a consensus (IUPAC) or of a known motif by JASPAR id or TF name (PWM scan)."""
    from deepreg.attribution import motifs

    if re.fullmatch(r"[ACGTRYSWKMBDHVNacgtryswkmbdhvn]+", motif) and not any(
            motif.upper() == key.split(" ", 1)[-1].upper() for key in known):
        return motifs.consensus_sites(sequences, motif)
    for key, pwm in known.items():
        identifier, _, name = key.partition(" ")
        if motif.upper() in (identifier.upper(), name.upper(), motifs.base_id(identifier)):
            return motifs.pwm_sites(sequences, pwm)
    raise DeepRegError(f"TF knock-out motif {motif!r}: not an IUPAC consensus, nor a known motif id or name")
