"""Train / validation / test assignment of (gene, condition) pairs, as a G x C int8 matrix.

The matrix is the index of pairs: 0 train, 1 validation, 2 test, -1 unused. Nothing is materialised
per pair beyond this byte. Kinds:
- `random`: pairs assigned at random in the given fractions (the original work's split);
- `genes`: whole genes held out (a gene's pairs all lie in one split);
- `conditions`: whole conditions held out;
- `genes_and_conditions`: genes and conditions are both assigned; a pair belongs to a split only
  when its gene and its condition agree, so test pairs are unseen genes in unseen conditions.
"""

from __future__ import annotations

import numpy as np

from deepreg.errors import DeepRegError

TRAIN, VALIDATION, TEST, UNUSED = 0, 1, 2, -1
SPLIT_NAMES = {TRAIN: "train", VALIDATION: "validation", TEST: "test"}


def assign(n_items: int, fractions, rng: np.random.Generator) -> np.ndarray:
    """Randomly assign n items to train/validation/test in the given fractions (train gets the rest)."""
    n_validation = int(round(fractions[1] * n_items))
    n_test = int(round(fractions[2] * n_items))
    labels = np.full(n_items, TRAIN, dtype=np.int8)
    order = rng.permutation(n_items)
    labels[order[:n_validation]] = VALIDATION
    labels[order[n_validation:n_validation + n_test]] = TEST
    return labels


def make_split(n_genes: int, n_conditions: int, kind: str, fractions=(0.8, 0.1, 0.1), seed: int = 0,
               gene_groups: np.ndarray | None = None) -> np.ndarray:
    """The G x C split matrix for one of the four kinds (see the module docstring).

    `gene_groups` (one id per gene, numbered in order of first appearance) keeps the genes of a group
    together when genes are held out: genes that share one promoter sequence are one group, so no
    promoter is both in training and in test. With every gene its own group the split is the same
    as without groups.
    """
    rng = np.random.default_rng(seed)
    if kind == "random":
        return assign(n_genes * n_conditions, fractions, rng).reshape(n_genes, n_conditions)
    if kind == "genes":
        return np.repeat(_assign_genes(n_genes, fractions, rng, gene_groups)[:, None], n_conditions, axis=1)
    if kind == "conditions":
        return np.repeat(assign(n_conditions, fractions, rng)[None, :], n_genes, axis=0)
    if kind == "genes_and_conditions":
        genes = _assign_genes(n_genes, fractions, rng, gene_groups)[:, None]
        conditions = assign(n_conditions, fractions, rng)[None, :]
        return np.where(genes == conditions, genes, UNUSED).astype(np.int8)
    raise DeepRegError(f"data.split: unknown split kind {kind!r} (expected random, genes, conditions or genes_and_conditions)")


def _assign_genes(n_genes: int, fractions, rng: np.random.Generator, gene_groups) -> np.ndarray:
    if gene_groups is None:
        return assign(n_genes, fractions, rng)
    gene_groups = np.asarray(gene_groups)
    return assign(int(gene_groups.max()) + 1, fractions, rng)[gene_groups]


def promoter_groups(sequences: np.ndarray) -> np.ndarray:
    """One id per gene, shared by genes whose promoters are identical, numbered by first appearance."""
    flat = np.ascontiguousarray(sequences.reshape(len(sequences), -1))
    _, first, inverse = np.unique(flat, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse.ravel()]


def describe(split: np.ndarray) -> dict[str, int]:
    """Pair counts per split, for logs and summaries."""
    return {name: int((split == code).sum()) for code, name in SPLIT_NAMES.items()}
