"""The network-free baselines a study has to beat, fitted on the study's own data and split.

Before its first trial a study fits every baseline of :mod:`deepreg.baselines` (named in the
spec's `baselines` key; all by default) on the train pairs of the base config's data and split, and
scores each on the same validation and test pairs the trials are scored on. The baseline to beat is
the one with the best validation score, chosen the way the trials are chosen (on validation only);
its test score is the figure a champion's test score is compared with.

The score is Pearson r for a regression study and 3-class accuracy (the data's class thresholds)
for a classification study. The table is stored in the Optuna study (attr `deepreg.baselines`, so
workers and `study show` need no MLflow) and logged on the parent run:

- metrics `baseline_val_r/NAME` and `baseline_test_r/NAME` (`..._accuracy/NAME` for classification);
- metric `baseline_to_beat`: the test score of the best baseline by validation;
- param `baseline_name` and tags `deepreg.baseline_name`, `deepreg.baseline_metric` (the trial metric
  it compares with, e.g. `test_pearson_r`) and `deepreg.baseline_pairs`;
- artifact `summary/baselines.txt`: the table as `study show` prints it.

On a full compendium the low-rank completion and the k-mer ridges take minutes, so each fitted
row is kept in the data cache (`<cache_dir>/baselines-<data fingerprint>.json`), keyed by the data
config, the task, the baseline and the source of `deepreg.baselines`: the next study or
`deepreg baselines` on the same data and split reads it back instead of fitting again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from deepreg.data.splits import TEST, VALIDATION
from deepreg.errors import DeepRegError
from deepreg import baselines as bl
from deepreg.sweeps._console import aligned

BASELINES_ATTR = "deepreg.baselines"
TO_BEAT_METRIC = "baseline_to_beat"
NAME_PARAM = "baseline_name"
# Baselines that take a while on a full compendium (k-mer counts of every promoter, ridge over 2080 features).
SLOW_BASELINES = ("cis_kmer_ridge", "cis_kmer_proximal_ridge")


@dataclasses.dataclass(frozen=True)
class Score:
    """How a task is scored: the short name in metric keys and tables, and the trial runs' metric keys."""

    short: str
    test_key: str
    validation_key: str


SCORES = {"regression": Score("r", "test_pearson_r", "validation_pearson_r"),
          "classification": Score("accuracy", "test_accuracy", "validation_accuracy")}


@dataclasses.dataclass(frozen=True)
class BaselineRow:
    name: str
    validation: float
    test: float
    test_mse: float
    pairs: int
    hyperparameter: str
    seconds: float
    cached: bool = False


@dataclasses.dataclass(frozen=True)
class BaselineTable:
    """Every baseline's validation and test score on one study's pairs."""

    task: str
    rows: tuple[BaselineRow, ...]
    split: str

    @property
    def score(self) -> Score:
        return SCORES[self.task]

    @property
    def best(self) -> BaselineRow | None:
        """The baseline with the highest validation score (NaN scores, e.g. a constant predictor, never win)."""
        scored = [row for row in self.rows if math.isfinite(row.validation) and math.isfinite(row.test)]
        return max(scored, key=lambda row: row.validation) if scored else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values for the study's user attrs (NaN stored as None)."""
        rows = [{key: (None if isinstance(value, float) and not math.isfinite(value) else value)
                 for key, value in dataclasses.asdict(row).items()} for row in self.rows]
        return {"task": self.task, "split": self.split, "rows": rows}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "BaselineTable":
        rows = tuple(BaselineRow(**{**row, "validation": _float(row["validation"]), "test": _float(row["test"]),
                                    "test_mse": _float(row["test_mse"])}) for row in values.get("rows", []))
        return cls(task=values.get("task", "regression"), rows=rows, split=values.get("split", "?"))


def _float(value) -> float:
    return float("nan") if value is None else float(value)


def parse_names(value: Any, source: str, key: str = "baselines") -> tuple[str, ...]:
    """The baselines a spec asks for: true (all), false (none), a list of names, or {skip: [names]}."""
    if value is None or value is True:
        return bl.BASELINE_NAMES
    if value is False:
        return ()
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"skip"})
        if unknown:
            raise DeepRegError(f"{source}: key '{key}.{unknown[0]}': unknown (expected {key}.skip: [names])")
        skip = check_names(value.get("skip") or [], source, f"{key}.skip")
        return tuple(name for name in bl.BASELINE_NAMES if name not in skip)
    if isinstance(value, list):
        chosen = check_names(value, source, key)
        return tuple(name for name in bl.BASELINE_NAMES if name in chosen)
    raise DeepRegError(f"{source}: key '{key}': expected true, false, a list of baseline names or {{skip: [names]}}")


def check_names(names: Any, source: str, key: str) -> set[str]:
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise DeepRegError(f"{source}: key '{key}': expected a list of baseline names")
    unknown = [name for name in names if name not in bl.BASELINE_NAMES]
    if unknown:
        raise DeepRegError(f"{source}: key '{key}': unknown baseline {unknown[0]!r} "
                           f"(one of {', '.join(bl.BASELINE_NAMES)})")
    return set(names)


def compute_baselines(config, dataset, names: Iterable[str] = bl.BASELINE_NAMES,
                      progress: Callable[[int, int, str], None] | None = None) -> BaselineTable:
    """Fit each named baseline on the train pairs of `config`'s split of `dataset`; score validation and test.

    The targets are the log ratios the network regresses on (`dataset.labels`, so missing values are
    treated as the run config says) and the pairs are those of `dataset.split(config.data)`: the same
    pairs a trial of this config is scored on. `progress(index, total, name)` is called before each fit.
    """
    task = config.model.task
    thresholds = tuple(config.data.class_thresholds)
    expression = dataset.labels("regression", config.data).astype(np.float64)
    split = dataset.split(config.data)
    names = list(names)
    cache = _RowCache(config, dataset)
    rows = []
    for index, name in enumerate(names, start=1):
        row = cache.get(name)
        if progress:
            progress(index, len(names), name + (" (cached)" if row else ""))
        if row is None:
            row = _fit_and_score(name, task, thresholds, expression, split, dataset)
            cache.put(row)
        rows.append(row)
    return BaselineTable(task=task, rows=tuple(rows), split=config.data.split)


def _fit_and_score(name: str, task: str, thresholds: tuple, expression: np.ndarray, split: np.ndarray,
                   dataset) -> BaselineRow:
    started = time.perf_counter()
    fitted = bl.fit_baseline(name, expression, split, dataset.regulator_inputs(), dataset.sequences)
    seconds = time.perf_counter() - started
    validation = bl.score(fitted.predictions, expression, split, VALIDATION, thresholds=thresholds)
    test = bl.score(fitted.predictions, expression, split, TEST, thresholds=thresholds)
    key = "r" if task == "regression" else "accuracy"
    return BaselineRow(name=name, validation=validation[key], test=test[key], test_mse=test["mse"],
                       pairs=int(test["n"]), hyperparameter=_describe(fitted.hyperparameter),
                       seconds=round(seconds, 3))


class _RowCache:
    """Fitted rows of one dataset in its cache folder; a row is valid for one data config, task and
    version of the baselines' code. No cache folder, or an unreadable file, means fitting again."""

    def __init__(self, config, dataset):
        folder = config.data.cache_dir
        self.path = Path(folder) / f"baselines-{dataset.fingerprint}.json" if folder else None
        data = {key: value for key, value in config.data.to_dict().items() if key != "cache_dir"}
        code = bl.code_fingerprint()
        self.context = {"data": data, "task": config.model.task, "code": code}
        self.rows = self._read()

    def _key(self, name: str) -> str:
        text = json.dumps({**self.context, "name": name}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def _read(self) -> dict:
        if self.path is None or not self.path.exists():
            return {}
        try:
            values = json.loads(self.path.read_text())
            return values if isinstance(values, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, name: str) -> BaselineRow | None:
        values = self.rows.get(self._key(name))
        if not isinstance(values, dict):
            return None
        try:
            row = BaselineTable.from_dict({"rows": [values]}).rows[0]
        except (KeyError, TypeError, ValueError):
            return None
        return dataclasses.replace(row, cached=True)

    def put(self, row: BaselineRow) -> None:
        """Keep `row`, written at once (atomically) so that an interrupted study keeps what it fitted."""
        if self.path is None:
            return
        self.rows[self._key(row.name)] = BaselineTable(task="", rows=(row,), split="").to_dict()["rows"][0]
        partial = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, partial = tempfile.mkstemp(dir=self.path.parent, prefix=".baselines-", suffix=".partial")
            with os.fdopen(handle, "w") as stream:
                json.dump(self.rows, stream)
            os.replace(partial, self.path)
        except OSError:  # a read-only or full cache folder: the rows are only not kept
            if partial and os.path.exists(partial):
                os.remove(partial)


def log_baselines(tracking_uri: str, parent_run_id: str, table: BaselineTable) -> None:
    """The table on the study's parent run: one metric per baseline and split, the one to beat, the text."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    now = int(time.time() * 1000)
    short = table.score.short
    metrics = []
    for row in table.rows:
        for prefix, value in ((f"baseline_val_{short}", row.validation), (f"baseline_test_{short}", row.test)):
            if math.isfinite(value):
                metrics.append(mlflow.entities.Metric(f"{prefix}/{row.name}", value, now, 0))
    best = table.best
    tags = {"deepreg.baseline_metric": table.score.test_key, "deepreg.baseline_pairs": pairs_note(table)}
    params = []
    if best is not None:
        metrics.append(mlflow.entities.Metric(TO_BEAT_METRIC, best.test, now, 0))
        tags["deepreg.baseline_name"] = best.name
        params.append(mlflow.entities.Param(NAME_PARAM, best.name))
    client.log_batch(parent_run_id, metrics=metrics, params=params,
                     tags=[mlflow.entities.RunTag(key, value) for key, value in tags.items()])
    client.log_text(parent_run_id, format_table(table) + "\n", "summary/baselines.txt")


def pairs_note(table: BaselineTable) -> str:
    pairs = max((row.pairs for row in table.rows), default=0)
    return (f"{table.score.short} on the {pairs:,} test pairs of the {table.split} split, the pairs the trials "
            "are tested on; fitted on its train pairs, hyperparameters chosen on its validation pairs")


def format_table(table: BaselineTable) -> str:
    """The baselines as a small aligned table, best-by-validation marked, with the baseline to beat."""
    short = table.score.short
    header = ["baseline", f"val {short}", f"test {short}", "test mse", "hyperparameter", "seconds"]
    best = table.best
    rows = [[row.name + (" *" if best is not None and row.name == best.name else ""), _num(row.validation),
             _num(row.test), _num(row.test_mse), row.hyperparameter,
             f"{row.seconds:.1f}" + (" (cached)" if row.cached else "")] for row in table.rows]
    lines = [f"network-free baselines: {pairs_note(table)}", *aligned([header, *rows], indent="  ")]
    lines.append(f"baseline to beat: {to_beat_text(table)}")
    return "\n".join(lines)


def to_beat_text(table: BaselineTable) -> str:
    best = table.best
    if best is None:
        return "none (no baseline has a finite score)"
    return f"{best.name} (* best val {table.score.short}), test {table.score.short} {best.test:.4f}"


def margin_text(value: float | None, table: BaselineTable | None) -> str:
    """A trial's test score minus the baseline to beat, signed ('+0.0312'); empty when either is unknown."""
    best = table.best if table else None
    if value is None or best is None or not math.isfinite(value):
        return ""
    return f"{value - best.test:+.4f}"


def stored_table(study) -> BaselineTable | None:
    values = study.user_attrs.get(BASELINES_ATTR)
    return BaselineTable.from_dict(values) if values else None


def _describe(hyperparameter: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value:g}" for key, value in hyperparameter.items())


def _num(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "nan"
