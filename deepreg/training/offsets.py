"""Fit the network-free baseline whose residual a model with `model.offset` learns.

The table is a baseline's prediction for every (gene, condition) pair of the dataset, fitted on
the training pairs of the run's split (validation pairs choose the baseline's rank or ridge alpha,
and, for `offset: best`, the baseline itself); test pairs are never read. It becomes the frozen
weights of the model's `baseline_offset` layer, so the saved model carries it.

Training pairs get cross-fitted values: the training pairs are cut into `folds` groups the way the
split holds pairs out (single pairs for `random`, whole genes for `genes`, whole conditions for
`conditions`, whole genes for `genes_and_conditions`), and each group's table entries come from a
fit without that group. Why: a baseline fitted on a pair nearly reproduces it (rank-160 completion
and a 472-regulator ridge interpolate their training pairs), so the in-sample residual is far
smaller than the held-out one and a network fitted to it learns to undo the baseline's shrinkage;
out-of-fold residuals look like validation and test residuals. Validation and test pairs get the
fit on all training pairs.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from pathlib import Path

import numpy as np

from deepreg import baselines
from deepreg._files import WriteFailed, remove_stale_partials, write_bytes_atomically
from deepreg.data.dataset import Dataset
from deepreg.data.splits import TEST, TRAIN, VALIDATION

log = logging.getLogger(__name__)
CANDIDATES = ("additive", "low_rank_completion", "trans_ridge", "cis_kmer_ridge", "cis_kmer_proximal_ridge")


def fit_baseline(name: str, dataset: Dataset, labels: np.ndarray, split: np.ndarray) -> np.ndarray:
    """G x C predictions of one named baseline, fitted on the training pairs."""
    return baselines.fit_baseline(name, labels, split, dataset.regulator_inputs(), dataset.sequences).predictions


def cached_offset(name: str, dataset: Dataset, labels: np.ndarray, split: np.ndarray, split_kind: str,
                  cache_dir: str | Path, folds: int = 5, seed: int = 0) -> tuple[np.ndarray, dict]:
    """`fit_offset`, kept in `cache_dir` under a key of everything it depends on (a sweep's trials and
    a study's seeds share one fit; the fit takes tens of seconds to minutes on the full compendium)."""
    candidates = CANDIDATES if name == "best" else (name,)
    key = hashlib.sha256(json.dumps([name, candidates, baselines.PROXIMAL_WINDOWS, dataset.fingerprint, split_kind,
                                     folds, seed]).encode()
                         + np.ascontiguousarray(split).tobytes()
                         + np.ascontiguousarray(np.nan_to_num(labels, nan=1e30)).tobytes()).hexdigest()[:20]
    path = Path(cache_dir) / f"offset-{key}.npz"
    remove_stale_partials(path.parent)
    if path.is_file():
        try:
            with np.load(path) as stored:
                return stored["table"], json.loads(str(stored["notes"]))
        except (OSError, ValueError, KeyError, EOFError) as error:
            log.warning("offset cache %s failed its check (%s); fitting it again", path, error)
    table, notes = fit_offset(name, dataset, labels, split, split_kind, folds, seed)
    _write_atomically(path, table, notes)
    return table, notes


def _write_atomically(path: Path, table: np.ndarray, notes: dict) -> None:
    """Cache the table through a checked partial file; a failure (a full disk) costs a refit next time."""
    buffer = io.BytesIO()
    np.savez(buffer, table=table, notes=json.dumps(notes))
    try:
        write_bytes_atomically(path, buffer.getvalue(), "offset cache")
    except WriteFailed as error:
        log.warning("%s; the offset will be fitted again next time", error)


def fit_offset(name: str, dataset: Dataset, labels: np.ndarray, split: np.ndarray, split_kind: str,
               folds: int = 5, seed: int = 0) -> tuple[np.ndarray, dict]:
    """The offset table of `model.offset = name` and what was chosen (`best`: lowest validation MSE)."""
    names = CANDIDATES if name == "best" else (name,)
    started = time.perf_counter()
    tables, errors = {}, {}
    for candidate in names:
        tables[candidate] = fit_baseline(candidate, dataset, labels, split)
        errors[candidate] = baselines.validation_mse(tables[candidate], labels, split) \
            if (split == VALIDATION).any() else float("nan")
    chosen = min(errors, key=lambda key: (np.nan_to_num(errors[key], nan=np.inf), key)) if name == "best" else name
    table = tables[chosen].copy()
    groups = training_folds(split, split_kind, folds, seed)
    for fold in range(folds):
        held_out = groups == fold
        if held_out.any():
            without_fold = np.where(held_out, TEST, split).astype(split.dtype)
            table[held_out] = fit_baseline(chosen, dataset, labels, without_fold)[held_out]
    seconds = time.perf_counter() - started
    log.info("baseline offset %s (validation MSE %.4f), cross-fitted on %d folds in %.1f s", chosen,
             errors[chosen], folds, seconds)
    table = np.nan_to_num(table, nan=0.0).astype(np.float32)
    return table, {"offset": chosen, "offset_validation_mse": errors[chosen], "offset_seconds": seconds}


def training_folds(split: np.ndarray, split_kind: str, folds: int, seed: int) -> np.ndarray:
    """G x C fold of every training pair (-1 elsewhere), grouped as the split holds pairs out."""
    rng = np.random.default_rng([seed, 7])
    n_genes, n_conditions = split.shape
    if split_kind == "random":
        fold = rng.integers(0, folds, size=split.shape)
    elif split_kind == "conditions":
        fold = np.broadcast_to(rng.integers(0, folds, size=n_conditions)[None, :], split.shape)
    else:
        fold = np.broadcast_to(rng.integers(0, folds, size=n_genes)[:, None], split.shape)
    return np.where(split == TRAIN, fold, -1)
