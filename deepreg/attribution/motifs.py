"""Motifs: PWMs of first-layer filters, known motifs (JASPAR, MEME files), TomTom matching and logos.

The notebook's section 7: for each first-layer filter, the 100 promoter subsequences that activate
it most give a position weight matrix; TomTom matches it to known motifs (there: 46 of 256 filters at
q < 0.1). Matching uses `memelite`'s TomTom; known motifs come from JASPAR (release 2026, fungi, via
`pyjaspar`, offline) or any MEME-format file. PWMs here are W x 4 arrays (A, C, G, T probabilities).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from deepreg.attribution import _network as net
from deepreg.attribution.stats import benjamini_hochberg
# The stage reads and writes its motif files as `motifs.read_meme` / `motifs.write_meme`.
from deepreg.data.io import read_jaspar, read_meme, write_meme  # noqa: F401
from deepreg.errors import DeepRegError

ALPHABET = "ACGT"
UNIFORM = np.full(4, 0.25)


@dataclasses.dataclass
class FilterMotifs:
    """PWMs of the first conv layer's filters (from their top-activating subsequences)."""

    pwms: dict[str, np.ndarray]          # "filter_7" -> W x 4 (trimmed to informative columns)
    sites: dict[str, int]                # subsequences used per filter
    max_activation: dict[str, float]
    filter_index: dict[str, int]
    untrimmed: dict[str, np.ndarray]
    inactive: list[str] = dataclasses.field(default_factory=list)  # fewer than min_sites activating windows


# --------------------------------------------------------------------------------------------------
# PWM helpers
# --------------------------------------------------------------------------------------------------
def information_content(pwm: np.ndarray, background=UNIFORM) -> np.ndarray:
    """Bits per column (relative entropy against the background)."""
    p = np.clip(np.asarray(pwm, float), 1e-9, 1)
    return (p * np.log2(p / np.asarray(background)[None])).sum(axis=1)


def trim(pwm: np.ndarray, min_bits: float = 0.25, min_width: int = 4) -> np.ndarray:
    """Drop uninformative flanking columns (keeping at least `min_width` around the best column)."""
    bits = information_content(pwm)
    keep = np.flatnonzero(bits >= min_bits)
    if len(keep) == 0:
        centre = int(bits.argmax())
        start = max(0, min(centre - min_width // 2, len(pwm) - min_width))
        return pwm[start:start + min_width]
    start, stop = keep[0], keep[-1] + 1
    while stop - start < min_width and (start > 0 or stop < len(pwm)):
        if start > 0:
            start -= 1
        if stop - start < min_width and stop < len(pwm):
            stop += 1
    return pwm[start:stop]


def consensus(pwm: np.ndarray) -> str:
    """Most likely letter per column, lower case where the column carries under 1 bit."""
    bits = information_content(pwm)
    letters = [ALPHABET[i] for i in np.asarray(pwm).argmax(axis=1)]
    return "".join(letter if b >= 1.0 else letter.lower() for letter, b in zip(letters, bits))


def reverse_complement_pwm(pwm: np.ndarray) -> np.ndarray:
    return np.asarray(pwm)[::-1, ::-1]


# --------------------------------------------------------------------------------------------------
# Filters -> PWMs
# --------------------------------------------------------------------------------------------------
def first_layer(network: net.Network) -> tuple[net.Step, bool]:
    """The first conv step and whether its filters are mirrored pairs (the second half are mirrors)."""
    convs = network.conv_steps()
    if not convs:
        raise DeepRegError("motifs: the model's sequence tower has no conv layer")
    mirrored = any(step.kind == net.MERGE_STRANDS for step in network.sequence)
    return convs[0], mirrored


def filter_activations(network: net.Network, sequences: np.ndarray, *, background=None):
    """Yield (gene offset, activations B x positions x F) of the first conv layer (after bias and ReLU)."""
    import tensorflow as tf

    from deepreg.attribution.deeplift import _model_input

    step, mirrored = first_layer(network)
    kernel = tf.constant(step.arrays["kernel"])
    bias = tf.constant(step.arrays["bias"])
    n_filters = step.arrays["kernel"].shape[-1] // (2 if mirrored else 1)
    for start in range(0, len(sequences), 128):
        x = tf.constant(_model_input(sequences[start:start + 128], background))
        z = tf.nn.relu(tf.nn.conv1d(x, kernel, 1, step.options["padding"].upper()) + bias)
        yield start, z[..., :n_filters]


def filter_pwms(model, sequences: np.ndarray, *, n_top: int = 100, background=None, min_bits: float = 0.25,
                pseudocount: float = 0.01, min_sites: int = 10) -> FilterMotifs:
    """For each first-layer filter, the PWM of its `n_top` most activating subsequences (activation > 0).

    Filters with fewer than `min_sites` activating windows (dead filters) get no PWM; they are listed
    in `inactive`.
    """
    import tensorflow as tf

    network = net.read_network(model)
    step, _ = first_layer(network)
    width = step.arrays["kernel"].shape[0]
    left = (width - 1) // 2 if step.options["padding"] == "same" else 0
    best_values = best_rows = best_cols = None
    for start, activations in filter_activations(network, sequences, background=background):
        n, positions, n_filters = activations.shape
        flat = tf.transpose(tf.reshape(activations, (-1, n_filters)))       # F x (n * positions)
        k = min(n_top, int(flat.shape[1]))
        values, indices = tf.math.top_k(flat, k=k)
        values, indices = values.numpy(), indices.numpy()
        rows, cols = indices // positions + start, indices % positions
        if best_values is None:
            best_values, best_rows, best_cols = values, rows, cols
        else:
            values = np.concatenate([best_values, values], axis=1)
            rows = np.concatenate([best_rows, rows], axis=1)
            cols = np.concatenate([best_cols, cols], axis=1)
            order = np.argsort(-values, axis=1)[:, :n_top]
            best_values = np.take_along_axis(values, order, 1)
            best_rows = np.take_along_axis(rows, order, 1)
            best_cols = np.take_along_axis(cols, order, 1)
    pwms, sites, peaks, index, untrimmed, inactive = {}, {}, {}, {}, {}, []
    padded = np.pad(np.asarray(sequences, np.float32), ((0, 0), (left, width), (0, 0)))
    for f in range(best_values.shape[0]):
        name = f"filter_{f}"
        use = best_values[f] > 0
        if use.sum() < min_sites:
            inactive.append(name)
            continue
        counts = np.zeros((width, 4))
        for row, col in zip(best_rows[f][use], best_cols[f][use]):
            counts += padded[row, col:col + width]
        total = counts.sum(axis=1, keepdims=True)
        pwm = (counts + pseudocount) / (total + 4 * pseudocount)
        untrimmed[name] = pwm
        pwms[name] = trim(pwm, min_bits)
        sites[name] = int(use.sum())
        peaks[name] = float(best_values[f][0]) if best_values.shape[1] else 0.0
        index[name] = f
    return FilterMotifs(pwms=pwms, sites=sites, max_activation=peaks, filter_index=index, untrimmed=untrimmed,
                        inactive=inactive)


# --------------------------------------------------------------------------------------------------
# Known motifs
# --------------------------------------------------------------------------------------------------
# The pseudocount of known motifs for TomTom: it keeps every log-odds finite.
KNOWN_MOTIF_PSEUDOCOUNT = 0.01


def jaspar_motifs(release: str = "JASPAR2026", tax_group: str = "fungi", collection: str = "CORE") -> dict[str, np.ndarray]:
    """JASPAR motifs as {'MA0341.1 MSN2': W x 4 PWM} (pyjaspar's bundled database, no network)."""
    out = {motif.label: motif.probabilities
           for motif in read_jaspar(release, tax_group, collection, pseudocount=KNOWN_MOTIF_PSEUDOCOUNT)}
    if not out:
        raise DeepRegError(f"JASPAR {release}: no {collection} motifs for tax group {tax_group!r}")
    return out


def known_motifs(source: str | None = None) -> tuple[dict[str, np.ndarray], str]:
    """Known motifs from a MEME file path, or JASPAR ('jaspar' / 'JASPAR2026:fungi'); and a label."""
    if source and Path(source).exists():
        return read_meme(source), Path(source).name
    text = source or "JASPAR2026:fungi"
    release, _, tax_group = text.partition(":")
    if release.lower() == "jaspar":
        release = "JASPAR2026"
    if not release.upper().startswith("JASPAR"):
        raise DeepRegError(f"known motifs {source!r}: not a file, and not a JASPAR release such as JASPAR2026:fungi")
    return jaspar_motifs(release.upper(), tax_group or "fungi"), f"{release.upper()} {tax_group or 'fungi'}"


# --------------------------------------------------------------------------------------------------
# TomTom
# --------------------------------------------------------------------------------------------------
def tomtom(queries: dict[str, np.ndarray], targets: dict[str, np.ndarray], *, n_jobs: int = -1) -> pd.DataFrame:
    """Every query against every target with memelite's TomTom: p-values and q-values.

    `q_value` is Benjamini-Hochberg over all queries x targets: a run matches hundreds of filters,
    and per-query correction (MEME TomTom's, kept as `q_value_per_query`) lets unrelated motifs pass
    q < 0.05 on simulated data. Returns one row per (query, target) pair.
    """
    from memelite import tomtom as _tomtom

    if not queries or not targets:
        return pd.DataFrame(columns=["query", "target", "target_id", "target_name", "p_value", "q_value",
                                     "q_value_per_query", "offset", "overlap", "strand"])
    query_names, target_names = list(queries), list(targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, _, offsets, overlaps, strands = _tomtom([np.asarray(queries[q], np.float64).T for q in query_names],
                                                   [np.asarray(targets[t], np.float64).T for t in target_names],
                                                   n_jobs=n_jobs)
    q = benjamini_hochberg(p)
    q_per_query = np.vstack([benjamini_hochberg(row) for row in p])
    rows = []
    for i, query in enumerate(query_names):
        for j, target in enumerate(target_names):
            identifier, _, name = target.partition(" ")
            rows.append((query, target, identifier, name or identifier, float(p[i, j]), float(q[i, j]),
                         float(q_per_query[i, j]), int(offsets[i, j]), int(overlaps[i, j]),
                         "-" if strands[i, j] else "+"))
    return pd.DataFrame(rows, columns=["query", "target", "target_id", "target_name", "p_value", "q_value",
                                       "q_value_per_query", "offset", "overlap", "strand"])


def best_matches(comparisons: pd.DataFrame, threshold: float = 0.05) -> pd.DataFrame:
    """The best target of each query, with the number of targets under the q threshold."""
    if comparisons.empty:
        return comparisons.assign(significant_targets=[])
    ordered = comparisons.sort_values(["query", "p_value"], kind="stable")
    best = ordered.groupby("query", sort=False).head(1).copy()
    counts = comparisons[comparisons["q_value"] < threshold].groupby("query").size()
    best["significant_targets"] = best["query"].map(counts).fillna(0).astype(int)
    best["matched"] = best["q_value"] < threshold
    return best.sort_values("p_value", kind="stable").reset_index(drop=True)


def matched_counts(best: pd.DataFrame, thresholds=(0.1, 0.05)) -> dict:
    """Queries whose best match passes each q threshold, and the TF names they match."""
    out = {}
    for threshold in thresholds:
        passed = best[best["q_value"] < threshold] if len(best) else best
        out[f"matched_q{threshold:g}"] = int(len(passed))
        out[f"matched_tfs_q{threshold:g}"] = sorted(set(passed["target_name"].astype(str))) if len(passed) else []
    return out


def base_id(identifier: str) -> str:
    """'MA0341.1' -> 'MA0341' (JASPAR matrix ids without version)."""
    return identifier.split(".")[0].upper()


# --------------------------------------------------------------------------------------------------
# Sites: consensus strings (IUPAC) and PWM scans, on one-hot promoters
# --------------------------------------------------------------------------------------------------
IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT", "M": "AC",
         "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT"}
_COMPLEMENT = str.maketrans("ACGTRYSWKMBDHVN", "TGCAYRSWMKVHDBN")


def consensus_sites(sequences: np.ndarray, pattern: str, *, both_strands: bool = True) -> np.ndarray:
    """Boolean G x L mask of every position covered by a match of an IUPAC consensus (and its reverse complement)."""
    from deepreg.data.encoding import decode

    pattern = pattern.upper()
    if not pattern or any(letter not in IUPAC for letter in pattern):
        raise DeepRegError(f"motif consensus {pattern!r}: expected IUPAC letters (ACGT, N, R, Y, ...)")
    patterns = {pattern}
    if both_strands:
        patterns.add(pattern.translate(_COMPLEMENT)[::-1])
    regexes = [re.compile("(?=(" + "".join(f"[{IUPAC[c]}]" for c in p) + "))") for p in patterns]
    texts = decode(sequences)
    mask = np.zeros(sequences.shape[:2], bool)
    for gene, text in enumerate(texts):
        for regex in regexes:
            for match in regex.finditer(text):
                mask[gene, match.start():match.start() + len(pattern)] = True
    return mask


def pwm_sites(sequences: np.ndarray, pwm: np.ndarray, *, fraction: float = 0.85, both_strands: bool = True,
              background=UNIFORM) -> np.ndarray:
    """Boolean G x L mask of windows whose log-odds score is at least `fraction` of the PWM's best score."""
    import tensorflow as tf

    pwm = np.asarray(pwm, float)
    log_odds = np.log2(np.clip(pwm, 1e-4, 1) / np.asarray(background)[None]).astype(np.float32)
    width = len(pwm)
    kernels = [log_odds] + ([log_odds[::-1, ::-1]] if both_strands else [])
    threshold = fraction * log_odds.max(axis=1).sum()
    x = tf.constant(np.asarray(sequences, np.float32))
    mask = np.zeros(sequences.shape[:2], bool)
    for kernel in kernels:
        scores = tf.nn.conv1d(x, tf.constant(kernel[:, :, None]), 1, "VALID")[..., 0].numpy()
        for offset in range(width):
            hit = scores >= threshold
            mask[:, offset:offset + hit.shape[1]] |= hit
    return mask


# --------------------------------------------------------------------------------------------------
# Logos
# --------------------------------------------------------------------------------------------------
def plot_logo(pwm: np.ndarray, axis, title: str = "", information: bool = True) -> None:
    """A sequence logo of a W x 4 PWM (information content) or of scores (W x 4, signed) on `axis`."""
    import logomaker

    values = np.asarray(pwm, float)
    if information:
        values = values * information_content(values)[:, None]
    frame = pd.DataFrame(values, columns=list(ALPHABET))
    logomaker.Logo(frame, ax=axis, color_scheme="classic", show_spines=False)
    axis.set_title(title, fontsize=8)
    axis.set_xticks([])
    if information:
        axis.set_ylim(0, 2)


def plot_matches(filters: dict[str, np.ndarray], matches: pd.DataFrame, targets: dict[str, np.ndarray], path: Path,
                 max_rows: int = 12) -> Path | None:
    """Logos of matched filters (left) beside their best known motif (right, on the matched strand)."""
    from deepreg._plotting import pyplot

    plt = pyplot()
    shown = matches[matches["matched"]].head(max_rows) if "matched" in matches else matches.head(max_rows)
    if shown.empty:
        return None
    fig, axes = plt.subplots(len(shown), 2, figsize=(8, 1.25 * len(shown)), squeeze=False)
    for row, (_, match) in enumerate(shown.iterrows()):
        plot_logo(filters[match["query"]], axes[row, 0], f"{match['query']}  (q = {match['q_value']:.2g})")
        target = targets[match["target"]]
        if match["strand"] == "-":
            target = reverse_complement_pwm(target)
        plot_logo(target, axes[row, 1], match["target"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
