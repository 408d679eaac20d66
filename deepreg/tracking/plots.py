"""Figures logged with every run: learning curves, predicted vs observed, confusion matrix."""

from __future__ import annotations

import numpy as np

from deepreg._plotting import pyplot
from deepreg.data.config import CLASS_NAMES

plt = pyplot()


def learning_curves(history: dict[str, list[float]], path) -> None:
    """Train and validation loss (and Pearson r or accuracy) per epoch."""
    second = "pearson_r" if "val_pearson_r" in history else "accuracy"
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for key, label in (("loss", "train (with dropout)"), ("train_mse", "train"), ("val_loss", "validation")):
        if key in history and len(history[key]) == len(epochs):
            axes[0].plot(epochs, history[key], marker="o", ms=3, label=label)
    axes[0].set(xlabel="epoch", ylabel="loss", title="Loss")
    for key, label in ((f"train_{second}", "train"), (f"val_{second}", "validation")):
        if key in history and len(history[key]) == len(epochs):
            axes[1].plot(epochs, history[key], marker="o", ms=3, label=label)
    axes[1].set(xlabel="epoch", ylabel=second.replace("_", " "), title=second.replace("_", " ").capitalize())
    for axis in axes:
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def predicted_vs_observed(predicted: np.ndarray, observed: np.ndarray, path, title: str = "Test pairs") -> None:
    """Hexbin density of predicted against observed log2 ratios, with the identity line and r."""
    figure, axis = plt.subplots(figsize=(5, 5))
    limit = float(np.percentile(np.abs(np.concatenate([predicted, observed])), 99.9)) if observed.size else 1.0
    axis.hexbin(observed, predicted, gridsize=60, bins="log", cmap="viridis", extent=(-limit, limit, -limit, limit))
    axis.plot([-limit, limit], [-limit, limit], color="crimson", lw=1)
    r = np.corrcoef(observed, predicted)[0, 1] if observed.size > 1 else float("nan")
    axis.set(xlabel="observed log2 ratio", ylabel="predicted log2 ratio", title=f"{title} (r = {r:.3f}, n = {observed.size:,})")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def confusion(percent: list[list[float]], path, title: str = "Test pairs (% of all)") -> None:
    figure, axis = plt.subplots(figsize=(4.5, 4))
    matrix = np.asarray(percent)
    axis.imshow(matrix, cmap="Blues")
    for (row, column), value in np.ndenumerate(matrix):
        axis.text(column, row, f"{value:.2f}", ha="center", va="center")
    axis.set(xticks=range(3), yticks=range(3), xticklabels=CLASS_NAMES, yticklabels=CLASS_NAMES,
             xlabel="predicted", ylabel="observed", title=title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
