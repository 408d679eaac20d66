"""Promoter attribution: per-gene tracks, their sum over genes (position bias) and plots.

The notebook summed gradient x input over conditions and saw positive and negative patches; summed
over all genes the patches were systematic, an artefact worth diagnosing. `position_profile` gives
that aggregate: the mean score at each promoter position over genes (position -1 is the base next
to the ORF). Scores come from `deeplift.sequence_scores` (DeepLIFT with dinucleotide-shuffled
references) or with `rule="gradient"` (gradient x input).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepreg.data.encoding import decode


def position_profile(scores: np.ndarray) -> np.ndarray:
    """Mean over genes of the per-position score (summed over bases): L values."""
    return np.asarray(scores, float).sum(axis=-1).mean(axis=0)


def position_bias(profile: np.ndarray, window: int = 25) -> dict:
    """How systematic the aggregate is: smoothed extremes and the share of |profile| in the 100 bp by the ORF."""
    profile = np.asarray(profile, float)
    smooth = np.convolve(profile, np.ones(window) / window, mode="same")
    total = np.abs(profile).sum()
    return {"max_smoothed": float(smooth.max()), "min_smoothed": float(smooth.min()),
            "argmax_distance_to_orf": int(len(profile) - smooth.argmax()),
            "argmin_distance_to_orf": int(len(profile) - smooth.argmin()),
            "share_last_100bp": float(np.abs(profile[-100:]).sum() / total) if total else float("nan")}


def _smooth(values, window):
    return np.convolve(values, np.ones(window) / window, mode="same")


def plot_position_bias(profiles: dict[str, np.ndarray], path: Path, window: int = 25) -> Path:
    """The per-position aggregate over genes of each method (smoothed), position relative to the ORF."""
    from deepreg._plotting import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(len(profiles), 1, figsize=(10, 2.3 * len(profiles)), squeeze=False)
    for axis, (label, profile) in zip(axes[:, 0], profiles.items()):
        positions = np.arange(-len(profile), 0)
        axis.plot(positions, profile, color="#bbbbbb", lw=0.6, label="per position")
        axis.plot(positions, _smooth(profile, window), color="#aa3377", lw=1.4, label=f"{window} bp mean")
        axis.axhline(0, color="black", lw=0.5)
        axis.set_ylabel("mean score")
        axis.set_title(f"{label}: mean over genes (summed over conditions)", fontsize=9)
        axis.legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("position relative to the ORF start (bp)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_gene(scores: np.ndarray, one_hot: np.ndarray, title: str, path: Path, *, window: int = 60,
              gradient: np.ndarray | None = None) -> Path:
    """One promoter: the score track over all positions, and a logo of the window with the largest |scores|."""
    import logomaker
    import pandas as pd

    from deepreg._plotting import pyplot

    plt = pyplot()
    track = scores.sum(axis=-1)
    length = len(track)
    centre = int(np.argmax(np.convolve(np.abs(track), np.ones(15), mode="same")))
    start = int(np.clip(centre - window // 2, 0, max(0, length - window)))
    rows = 3 if gradient is not None else 2
    fig, axes = plt.subplots(rows, 1, figsize=(10, 1.9 * rows))
    positions = np.arange(-length, 0)
    axes[0].plot(positions, track, color="#4477aa", lw=0.7)
    axes[0].axvspan(start - length, start + window - length, color="#ffcc66", alpha=0.4)
    axes[0].set_title(title, fontsize=9)
    axes[0].set_ylabel("DeepLIFT")
    frame = pd.DataFrame(scores[start:start + window], columns=list("ACGT"))
    logomaker.Logo(frame, ax=axes[1], color_scheme="classic")
    sequence = decode(one_hot[None, start:start + window])[0]
    axes[1].set_title(f"positions {start - length}..{start + window - length - 1}: {sequence}", fontsize=7)
    axes[1].set_xticks([])
    if gradient is not None:
        frame = pd.DataFrame(gradient[start:start + window], columns=list("ACGT"))
        logomaker.Logo(frame, ax=axes[2], color_scheme="classic")
        axes[2].set_title("gradient x input", fontsize=7)
        axes[2].set_xticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
