"""Tiny synthetic compendia for tests: planted motifs, known regulators, built in milliseconds."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

MOTIF_A = "TGACTCA"   # GCN4-like site, read by regulator REG_A (activator)
MOTIF_B = "CCCCTTAGGGG"  # a second, unrelated site, read by REG_B (repressor)


def write_compendium(folder: Path, n_genes: int = 120, n_conditions: int = 16, length: int = 60,
                     seed: int = 0, missing: float = 0.02, noise: float = 0.1) -> dict:
    """Write expression (PCL), promoters (FASTA) and regulators; return paths and the truth.

    Genes carrying MOTIF_A follow +1.5 x REG_A's expression; genes carrying MOTIF_B follow
    -1.0 x REG_B's; the rest is noise. The two regulators and two decoys are rows of the matrix.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    letters = np.array(list("ACGT"))
    sequences = ["".join(rng.choice(letters, length, p=[0.31, 0.19, 0.19, 0.31])) for _ in range(n_genes)]
    has_a = rng.random(n_genes) < 0.3
    has_b = rng.random(n_genes) < 0.3
    for gene in range(n_genes):
        for flag, motif in ((has_a[gene], MOTIF_A), (has_b[gene], MOTIF_B)):
            if flag:
                start = int(rng.integers(0, length - len(motif)))
                sequences[gene] = sequences[gene][:start] + motif + sequences[gene][start + len(motif):]
    genes = [f"G{index:04d}" for index in range(n_genes)]
    regulators = genes[:4]
    regulator_expression = rng.normal(0, 1, (4, n_conditions))
    expression = rng.normal(0, noise, (n_genes, n_conditions))
    expression += 1.5 * has_a[:, None] * regulator_expression[0][None, :]
    expression -= 1.0 * has_b[:, None] * regulator_expression[1][None, :]
    expression[:4] = regulator_expression
    expression[rng.random(expression.shape) < missing] = np.nan
    expression[0, :] = regulator_expression[0]
    conditions = [f"condition {index}" for index in range(n_conditions)]
    lines = ["\t".join(["UID", "NAME", "GWEIGHT", *conditions])]
    for gene, row in zip(genes, expression):
        cells = ["" if np.isnan(v) else f"{v:.3f}" for v in row]
        lines.append("\t".join([gene, "", "1", *cells]))
    (folder / "expression.pcl").write_text("\n".join(lines) + "\n")
    with gzip.open(folder / "promoters.fa.gz", "wt") as handle:
        for gene, sequence in zip(genes, sequences):
            handle.write(f">{gene}\n{sequence}\n")
    (folder / "regulators.txt").write_text("\n".join(regulators) + "\n")
    return {"expression": folder / "expression.pcl", "promoters": folder / "promoters.fa.gz",
            "regulators": folder / "regulators.txt", "genes": genes, "has_a": has_a, "has_b": has_b,
            "sequences": sequences, "values": expression}


def tiny_run_config(folder: Path, files: dict, *, filters: int = 8, width: int = 7, dense: tuple = (16, 16),
                    dropout: float = 0.1, epochs: int = 4, block_genes: int = 16, block_conditions: int = 16,
                    learning_rate: float = 3e-3):
    """A run config for a tiny model on a compendium written by `write_compendium` (cache under folder)."""
    from deepreg.data.config import DataConfig
    from deepreg.models.config import HeadConfig, ModelConfig, SequenceConfig
    from deepreg.training.config import RunConfig, TrainingConfig

    return RunConfig(
        data=DataConfig(bundle=None, expression=str(files["expression"]), promoters=str(files["promoters"]),
                        regulators=str(files["regulators"]), sequence_length=60, cache_dir=str(folder / "cache")),
        model=ModelConfig(sequence=SequenceConfig(filters=(filters,), filter_width=(width,)),
                          head=HeadConfig(dense_units=tuple(dense), dropout=dropout)),
        training=TrainingConfig(epochs=epochs, block_genes=block_genes, block_conditions=block_conditions,
                                learning_rate=learning_rate))
