"""What part of a prediction comes through per-gene (or per-condition) lookup terms, not regulation.

A bilinear model may hold a per-gene embedding (E_g, e_g: `model.gene_embedding`), a per-condition
one (F_c, f_c: `model.condition_embedding`) and a fixed baseline table (`model.offset`). They are
indexed by the gene's or condition's row, read neither the promoter nor the regulators, and are the
same at an input and its DeepLIFT reference: regulator and sequence scores give them nothing. What a
prediction owes to them is therefore not regulation. Here each term is switched off in turn (its
weights zeroed, then restored) and the predictions compared: the variance share of the term's part
var(f - f_without) / var(f) over all pairs, and its mean absolute size.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd

from deepreg.attribution.predict import predict

TERMS = (("gene embedding (E_g, e_g)", "BilinearFusion", ("embedding", "embedding_offset")),
         ("condition embedding (F_c, f_c)", "BilinearFusion", ("condition_embedding", "condition_embedding_offset")),
         ("baseline offset table", "BaselineOffset", ("table",)))


def _layers(model):
    """Every layer of a model, nested models included."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def term_variables(model) -> dict[str, list]:
    """{term label: its weight variables} for the lookup terms present in `model`."""
    found: dict[str, list] = {}
    for layer in _layers(model):
        for label, kind, names in TERMS:
            if type(layer).__name__ != kind:
                continue
            variables = [getattr(layer, name) for name in names if getattr(layer, name, None) is not None]
            if variables:
                found.setdefault(label, []).extend(variables)
    return found


@contextlib.contextmanager
def zeroed(variables):
    """Temporarily set weight variables to zero (restored on exit)."""
    import keras

    saved = [keras.ops.convert_to_numpy(variable).copy() for variable in variables]
    for variable, value in zip(variables, saved):
        variable.assign(np.zeros_like(value))
    try:
        yield
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)


def lookup_term_shares(model, sequences, regulators, *, baseline=None, **kwargs) -> pd.DataFrame:
    """Per lookup term of the model: variance share and mean |part| of the predictions it carries.

    Empty when the model has no such term. kwargs go to `predict` (`gene_index`, `background`, ...).
    """
    terms = term_variables(model)
    if not terms:
        return pd.DataFrame(columns=["term", "variance_share", "mean_abs_part", "mean_abs_prediction"])
    baseline = predict(model, sequences, regulators, **kwargs) if baseline is None else baseline
    total_variance = float(np.var(baseline))
    rows = []
    for label, variables in terms.items():
        with zeroed(variables):
            without = predict(model, sequences, regulators, **kwargs)
        part = baseline - without
        rows.append({"term": label, "variance_share": float(np.var(part)) / total_variance if total_variance else float("nan"),
                     "mean_abs_part": float(np.abs(part).mean()), "mean_abs_prediction": float(np.abs(baseline).mean())})
    return pd.DataFrame(rows)
