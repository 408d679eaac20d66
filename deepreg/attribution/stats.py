"""Small statistics used by the attribution checks: rank tests, enrichment, precision at k, q-values."""

from __future__ import annotations

import numpy as np
from scipy import stats as _stats


def mann_whitney_greater(in_group, out_group) -> dict:
    """One-sided Mann-Whitney U test that `in_group` values are larger than `out_group` values.

    Returns U, the p-value, the effect size as the common-language probability P(X_in > X_out)
    (U / (n_in n_out), 0.5 = no effect) and the group means and sizes.
    """
    a = np.asarray(in_group, float)
    b = np.asarray(out_group, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return {"u": float("nan"), "p_value": float("nan"), "effect_size": float("nan"), "n_in": len(a),
                "n_out": len(b), "mean_in": float("nan"), "mean_out": float("nan")}
    result = _stats.mannwhitneyu(a, b, alternative="greater")
    return {"u": float(result.statistic), "p_value": float(result.pvalue),
            "effect_size": float(result.statistic / (len(a) * len(b))), "n_in": int(len(a)), "n_out": int(len(b)),
            "mean_in": float(a.mean()), "mean_out": float(b.mean())}


def fisher_enrichment(chosen, members, universe: int) -> dict:
    """One-sided Fisher exact test: are `members` over-represented among `chosen` (index sets)?"""
    chosen, members = set(map(int, chosen)), set(map(int, members))
    both = len(chosen & members)
    table = [[both, len(chosen) - both], [len(members) - both, universe - len(chosen) - len(members) + both]]
    odds, p_value = _stats.fisher_exact(table, alternative="greater")
    return {"overlap": both, "chosen": len(chosen), "members": len(members), "universe": int(universe),
            "odds_ratio": float(odds), "p_value": float(p_value),
            "expected_overlap": len(chosen) * len(members) / universe if universe else float("nan")}


def precision_at_k(ranked, positives, k: int) -> float:
    """Fraction of the first k of `ranked` that are in `positives`."""
    ranked = list(ranked)[:k]
    positives = set(positives)
    return sum(1 for item in ranked if item in positives) / k if k else float("nan")


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg q-values (any shape; NaN stays NaN)."""
    p = np.asarray(p_values, float)
    flat = p.reshape(-1)
    q = np.full_like(flat, np.nan)
    ok = np.isfinite(flat)
    values = flat[ok]
    if values.size:
        order = np.argsort(values)
        ranked = values[order] * values.size / np.arange(1, values.size + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        out = np.empty_like(values)
        out[order] = np.minimum(ranked, 1.0)
        q[ok] = out
    return q.reshape(p.shape)


def spearman(a, b) -> dict:
    a, b = np.asarray(a, float).reshape(-1), np.asarray(b, float).reshape(-1)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return {"rho": float("nan"), "p_value": float("nan"), "n": int(ok.sum())}
    result = _stats.spearmanr(a[ok], b[ok])
    return {"rho": float(result.statistic), "p_value": float(result.pvalue), "n": int(ok.sum())}
