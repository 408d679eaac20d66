"""Train / validation / test assignment of (gene, condition) pairs, as a G x C int8 matrix.

The matrix is the index of pairs: 0 train, 1 validation, 2 test, -1 unused. Nothing is materialised
per pair beyond this byte. Kinds:
- `random`: pairs assigned at random in the given fractions (the original work's split);
- `genes`: whole genes held out (a gene's pairs all lie in one split);
- `conditions`: whole conditions held out;
- `genes_and_conditions`: genes and conditions are both assigned; a pair belongs to a split only
  when its gene and its condition agree, so test pairs are unseen genes in unseen conditions.

`exclude_conditions` then sets whole conditions to -1 (`data.exclude_conditions`): held out of every split.
"""

from __future__ import annotations

import re

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


def excluded_conditions(conditions, patterns) -> np.ndarray:
    """Indices of the conditions named by `patterns`: an exact name (surrounding spaces ignored), else a
    regular expression searched in the name. A pattern that names no condition is an error (a typo
    would otherwise silently train on the conditions meant to be held out)."""
    names = [str(name) for name in conditions]
    chosen: set[int] = set()
    for index, pattern in enumerate(patterns):
        exact = [i for i, name in enumerate(names) if name.strip() == str(pattern).strip()]
        if not exact:
            try:
                regex = re.compile(str(pattern))
            except re.error as error:
                raise DeepRegError(f"data.exclude_conditions[{index}]: {pattern!r} is neither a condition name "
                                   f"nor a valid regular expression ({error})") from None
            exact = [i for i, name in enumerate(names) if regex.search(name)]
        if not exact:
            raise DeepRegError(f"data.exclude_conditions[{index}]: {pattern!r} matches none of the "
                               f"{len(names)} condition names")
        chosen.update(exact)
    return np.array(sorted(chosen), dtype=int)


def exclude_conditions(split: np.ndarray, conditions, patterns) -> np.ndarray:
    """The split with the conditions named by `patterns` in no split (UNUSED)."""
    if not patterns:
        return split
    out = split.copy()
    out[:, excluded_conditions(conditions, patterns)] = UNUSED
    return out


def describe(split: np.ndarray) -> dict[str, int]:
    """Pair counts per split, for logs and summaries."""
    return {name: int((split == code).sum()) for code, name in SPLIT_NAMES.items()}
