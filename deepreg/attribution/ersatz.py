"""Synthetic sequences: dinucleotide shuffles (DeepLIFT's references for promoters) and N-masking.

Named after tangermeme's module of the same purpose.
"""

from __future__ import annotations

import numpy as np


def dinucleotide_shuffle(one_hot: np.ndarray, n: int = 10, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """`n` shuffles of one promoter (L x 4 one-hot) that keep its dinucleotide counts.

    The Euler-path shuffle of the deeplift package (Altschul & Erickson): the successor lists of each
    letter are permuted, except their last entries, and walked from the first letter. N and padding
    rows (all zero) stay where they are; the letters around them are shuffled as one sequence.
    Returns n x L x 4 with the input's dtype.
    """
    rng = np.random.default_rng(rng)
    one_hot = np.asarray(one_hot)
    known = one_hot.sum(axis=1) > 0
    tokens = one_hot[known].argmax(axis=1)
    out = np.repeat(one_hot[None], n, axis=0)
    if len(tokens) < 3:
        return out
    successors = [np.flatnonzero(tokens[:-1] == letter) + 1 for letter in range(4)]
    positions = np.flatnonzero(known)
    eye = np.eye(4, dtype=one_hot.dtype)
    for index in range(n):
        walks = []
        for letter in range(4):
            order = np.arange(len(successors[letter]))
            if len(order) > 1:
                order[:-1] = rng.permutation(len(order) - 1)
            walks.append(successors[letter][order])
        counters = [0, 0, 0, 0]
        result = np.empty(len(tokens), dtype=np.int64)
        current = 0
        result[0] = tokens[0]
        for j in range(1, len(tokens)):
            letter = tokens[current]
            current = walks[letter][counters[letter]]
            counters[letter] += 1
            result[j] = tokens[current]
        out[index, positions] = eye[result]
    return out


def dinucleotide_counts(one_hot: np.ndarray) -> np.ndarray:
    """4 x 4 counts of adjacent letter pairs (N rows skipped) - what a dinucleotide shuffle keeps."""
    known = one_hot.sum(axis=1) > 0
    tokens = one_hot[known].argmax(axis=1)
    counts = np.zeros((4, 4), dtype=np.int64)
    np.add.at(counts, (tokens[:-1], tokens[1:]), 1)
    return counts
