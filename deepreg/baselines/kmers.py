"""Promoter k-mer counts, a k-mer and its reverse complement together: the cis ridges' features.

The network's `GeneKmerCounts` layer (`deepreg.models.bilinear`) counts the same columns.
"""

from __future__ import annotations

import numpy as np


def kmer_counts(sequences: np.ndarray, k: int = 6) -> np.ndarray:
    """G x K counts of each k-mer and its reverse complement together (K = 2080 for k = 6).

    Windows touching an all-zero position (N or padding) are not counted. Column j counts the
    canonical k-mer ``canonical_kmers(k)[j]`` (the smaller base-4 index of a k-mer and its reverse
    complement, with A, C, G, T = 0, 1, 2, 3).
    """
    sequences = np.asarray(sequences)
    n_genes, length, _ = sequences.shape
    canonical, column_of = canonical_kmer_columns(k)
    n_windows = length - k + 1
    if n_windows <= 0:
        return np.zeros((n_genes, canonical.size), dtype=np.float32)
    codes = sequences.argmax(axis=2).astype(np.int64)
    known = sequences.any(axis=2)
    kmer_index = np.zeros((n_genes, n_windows), dtype=np.int64)
    window_known = np.ones((n_genes, n_windows), dtype=bool)
    for offset in range(k):
        kmer_index = kmer_index * 4 + codes[:, offset : offset + n_windows]
        window_known &= known[:, offset : offset + n_windows]
    flat = (np.arange(n_genes)[:, None] * canonical.size + column_of[kmer_index])[window_known]
    counts = np.bincount(flat, minlength=n_genes * canonical.size)
    return counts.reshape(n_genes, canonical.size).astype(np.float32)


def canonical_kmers(k: int = 6) -> np.ndarray:
    """Base-4 indices of the canonical k-mers, in the column order of :func:`kmer_counts`."""
    return canonical_kmer_columns(k)[0]


def canonical_kmer_columns(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted canonical k-mer indices, and for each of the 4**k k-mers its canonical column."""
    index = np.arange(4**k, dtype=np.int64)
    powers = 4 ** np.arange(k - 1, -1, -1, dtype=np.int64)
    digits = (index[:, None] // powers[None, :]) % 4
    reverse_complement = ((3 - digits[:, ::-1]) * powers[None, :]).sum(axis=1)
    canonical_index = np.minimum(index, reverse_complement)
    canonical = np.unique(canonical_index)
    return canonical, np.searchsorted(canonical, canonical_index)
