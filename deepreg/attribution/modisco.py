"""TF-MoDISco (modisco-lite) motifs from DeepLIFT sequence scores, matched to known motifs like filters.

TF-MoDISco cuts high-scoring windows (seqlets) out of the contribution tracks, clusters them and
aggregates each cluster into a motif: a PWM of the seqlets' bases and a contribution weight matrix
(CWM). It needs the one-hot promoters and the hypothetical contributions of every base at every
position (`deeplift.sequence_scores(...).hypothetical`). Motifs are trimmed to the positions that
carry the CWM's weight and matched with TomTom (`motifs.tomtom`).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class ModiscoMotif:
    name: str             # "pos_pattern_0" / "neg_pattern_1"
    pwm: np.ndarray       # trimmed W x 4 probabilities
    cwm: np.ndarray       # trimmed W x 4 contributions
    seqlets: int
    sign: int


def trim_by_cwm(pwm: np.ndarray, cwm: np.ndarray, fraction: float = 0.3, min_width: int = 4):
    """Keep the span of positions whose |CWM| total is at least `fraction` of the largest."""
    weight = np.abs(cwm).sum(axis=1)
    keep = np.flatnonzero(weight >= fraction * weight.max()) if weight.max() > 0 else np.arange(len(weight))
    start, stop = int(keep[0]), int(keep[-1]) + 1
    while stop - start < min_width and (start > 0 or stop < len(weight)):
        start = max(0, start - 1)
        stop = min(len(weight), stop + 1) if stop - start < min_width else stop
    return pwm[start:stop], cwm[start:stop]


def run_modisco(one_hot: np.ndarray, hypothetical: np.ndarray, *, max_seqlets: int = 2000, window: int = 15,
                flank: int = 5, n_leiden_runs: int = 10, min_metacluster_size: int = 50, final_min_cluster_size: int = 20,
                verbose: bool = False) -> list[ModiscoMotif]:
    """Motifs found by TF-MoDISco in G x L x 4 one-hot promoters and their hypothetical contributions."""
    from modiscolite.tfmodisco import TFMoDISco

    one_hot = np.asarray(one_hot, np.float32)
    hypothetical = np.asarray(hypothetical, np.float32)
    positive, negative = TFMoDISco(one_hot=one_hot, hypothetical_contribs=hypothetical,
                                   sliding_window_size=window, flank_size=flank,
                                   max_seqlets_per_metacluster=max_seqlets, n_leiden_runs=n_leiden_runs,
                                   min_metacluster_size=min_metacluster_size,
                                   final_min_cluster_size=final_min_cluster_size, verbose=verbose)
    motifs: list[ModiscoMotif] = []
    for sign, patterns in ((1, positive), (-1, negative)):
        for index, pattern in enumerate(patterns or []):
            pwm, cwm = trim_by_cwm(np.asarray(pattern.sequence), np.asarray(pattern.contrib_scores))
            pwm = (pwm + 1e-3) / (pwm + 1e-3).sum(axis=1, keepdims=True)
            motifs.append(ModiscoMotif(name=f"{'pos' if sign > 0 else 'neg'}_pattern_{index}", pwm=pwm, cwm=cwm,
                                       seqlets=len(pattern.seqlets), sign=sign))
    return motifs
