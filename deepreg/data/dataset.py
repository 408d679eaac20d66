"""The factored dataset: promoters (G x L x 4), expression (G x C) and regulator inputs (C x R).

A (gene, condition) pair is an index into these arrays, never a row of a materialised table: the
sequence input depends only on the gene and the regulator input only on the condition.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from importlib import resources
from pathlib import Path

import h5py
import numpy as np

from deepreg._files import WriteFailed, remove_stale_partials, write_bytes_atomically
from deepreg.data import encoding, readers, splits
from deepreg.data.config import DataConfig
from deepreg.data.io import read_id_list, read_promoters
from deepreg.errors import DeepRegError

log = logging.getLogger(__name__)

BUNDLE_FILES = {"expression": "expression.pcl.gz", "promoters": "promoters.fa.gz",
                "regulators": "regulators.txt", "genes": "genes.tsv", "targets": "targets.txt"}
OPTIONAL_FILES = ("genes", "targets")
CACHE_FORMAT = 1
CACHED_NAMES = ("genes", "conditions", "regulators", "symbols", "regulator_symbols")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Everything a model needs, in factored form. Arrays are read-only by convention."""

    genes: tuple[str, ...]
    conditions: tuple[str, ...]
    regulators: tuple[str, ...]
    sequences: np.ndarray
    expression: np.ndarray
    regulator_expression: np.ndarray
    symbols: tuple[str, ...]
    regulator_symbols: tuple[str, ...]
    fingerprint: str
    summary: dict

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def n_conditions(self) -> int:
        return len(self.conditions)

    @property
    def n_regulators(self) -> int:
        return len(self.regulators)

    @property
    def sequence_length(self) -> int:
        return int(self.sequences.shape[1])

    def regulator_inputs(self) -> np.ndarray:
        """C x R float32 regulator expression with missing cells filled with 0 (no change)."""
        return np.nan_to_num(self.regulator_expression, nan=0.0).astype(np.float32)

    def regulator_gene_rows(self) -> np.ndarray:
        """Each regulator's row among `genes` (-1 for a regulator whose gene is not one of them, e.g. one
        without a promoter)."""
        row_of = {gene: index for index, gene in enumerate(self.genes)}
        return np.array([row_of.get(regulator, -1) for regulator in self.regulators], dtype=np.int64)

    def labels(self, task: str, config: DataConfig) -> np.ndarray:
        """G x C float32 targets: log-ratios, or classes 0 down / 1 baseline / 2 up; NaN = not scored."""
        values = self.expression if config.missing == "mask" else np.nan_to_num(self.expression, nan=0.0)
        if task == "regression":
            return values.astype(np.float32)
        down, up = config.class_thresholds
        classes = np.where(values <= down, 0.0, np.where(values >= up, 2.0, 1.0)).astype(np.float32)
        classes[np.isnan(values)] = np.nan
        return classes

    @functools.cached_property
    def promoter_groups(self) -> np.ndarray:
        """One id per gene, shared by genes with identical promoters (computed once per dataset)."""
        return splits.promoter_groups(self.sequences)

    def split(self, config: DataConfig) -> np.ndarray:
        groups = self.promoter_groups if config.split in ("genes", "genes_and_conditions") else None
        split = splits.make_split(self.n_genes, self.n_conditions, config.split, config.split_fractions,
                                  config.split_seed, gene_groups=groups)
        return splits.exclude_conditions(split, self.conditions, config.exclude_conditions)

    def observed_split(self, config: DataConfig) -> np.ndarray:
        """The split with missing cells unused: the pairs that are actually trained and scored on."""
        return np.where(np.isnan(self.expression), splits.UNUSED, self.split(config)).astype(np.int8)

    def display_name(self, index: int) -> str:
        """'MSN2 (YMR037C)' where a symbol is known, else the ORF id."""
        symbol, orf = self.symbols[index], self.genes[index]
        return f"{symbol} ({orf})" if symbol and symbol != orf else orf


def bundle_paths(name: str) -> dict[str, Path]:
    """Files of a dataset shipped inside the package (deepreg/bundled/<name>/)."""
    folder = resources.files("deepreg") / "bundled" / name
    available = sorted(p.name for p in (resources.files("deepreg") / "bundled").iterdir() if p.is_dir())
    if not folder.is_dir():
        raise DeepRegError(f"data.bundle: no bundled dataset named {name!r} (available: {', '.join(available) or 'none'})")
    return {key: Path(str(folder / filename)) for key, filename in BUNDLE_FILES.items()}


def input_paths(config: DataConfig) -> dict[str, Path | None]:
    """Resolve the bundle and explicit paths into the four input files (genes may be None)."""
    paths: dict[str, Path | None] = {key: None for key in BUNDLE_FILES}
    if config.bundle:
        paths.update(bundle_paths(config.bundle))
    for key in BUNDLE_FILES:
        explicit = getattr(config, key)
        if explicit:
            paths[key] = Path(explicit)
    for key in OPTIONAL_FILES:
        if paths[key] is not None and not paths[key].is_file():
            if getattr(config, key):
                raise DeepRegError(f"data.{key}: {paths[key]}: no such file")
            paths[key] = None
    for key in ("expression", "promoters", "regulators"):
        if paths[key] is None or not paths[key].is_file():
            raise DeepRegError(f"data.{key}: {paths[key]}: no such file")
    return paths


def fingerprint(paths: dict[str, Path | None], config: DataConfig) -> str:
    """Hash of the input files' bytes and the config fields that shape the arrays."""
    digest = hashlib.sha256()
    for key in sorted(paths):
        path = paths[key]
        digest.update(key.encode())
        if path is not None:
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    digest.update(json.dumps({"format": CACHE_FORMAT, **config.dataset_key()}, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def build_dataset(config: DataConfig, paths: dict[str, Path | None] | None = None) -> Dataset:
    """Read the input files and assemble the factored dataset (no cache)."""
    paths = paths or input_paths(config)
    matrix = readers.read_expression(paths["expression"])
    promoters = read_promoters(paths["promoters"])
    regulators = read_id_list(paths["regulators"], "regulator")
    symbols = readers.read_gene_symbols(paths["genes"]) if paths["genes"] else {}
    for orf, name in zip(matrix.genes, matrix.names):
        symbol = readers.symbol_from_name(name, orf)
        if symbol and orf not in symbols:
            symbols[orf] = symbol

    row_of = {gene: row for row, gene in enumerate(matrix.genes)}
    regulators = _regulators_in_matrix(regulators, row_of, config, paths)
    regulator_expression = matrix.values[[row_of[r] for r in regulators]].T.copy()

    targets = set(read_id_list(paths["targets"], "target gene")) if paths["targets"] else None
    kept = [row for row, gene in enumerate(matrix.genes) if gene in promoters and (targets is None or gene in targets)]
    if config.max_genes is not None and len(kept) > config.max_genes:
        chosen = np.sort(np.random.default_rng(0).choice(len(kept), config.max_genes, replace=False))
        kept = [kept[i] for i in chosen]
    if len(kept) < 2:
        raise DeepRegError(f"{paths['promoters']}: only {len(kept)} genes of {paths['expression']} have a promoter; "
                           "check that both files use the same gene ids")
    genes = tuple(matrix.genes[row] for row in kept)
    _warn_all_missing(paths["expression"], matrix.values[kept], regulator_expression)
    lengths = np.array([len(promoters[g]) for g in genes])
    summary = {
        "genes_in_expression": len(matrix.genes),
        "genes_without_promoter": sum(1 for g in matrix.genes if g not in promoters),
        "promoters_without_expression": sum(1 for g in promoters if g not in row_of),
        "genes": len(genes),
        "targets_listed": len(targets) if targets is not None else None,
        "conditions": len(matrix.conditions),
        "regulators": len(regulators),
        "missing_cells": int(np.isnan(matrix.values[kept]).sum()),
        "promoters_padded": int((lengths < config.sequence_length).sum()),
        "promoters_trimmed": int((lengths > config.sequence_length).sum()),
    }
    return Dataset(
        genes=genes,
        conditions=tuple(matrix.conditions),
        regulators=tuple(regulators),
        sequences=encoding.one_hot((promoters[g] for g in genes), config.sequence_length),
        expression=matrix.values[kept].copy(),
        regulator_expression=regulator_expression,
        symbols=tuple(symbols.get(g, "") for g in genes),
        regulator_symbols=tuple(symbols.get(r, "") for r in regulators),
        fingerprint=fingerprint(paths, config),
        summary=summary,
    )


def _regulators_in_matrix(regulators: tuple[str, ...], row_of: dict[str, int], config: DataConfig,
                          paths: dict[str, Path | None]) -> tuple[str, ...]:
    """The listed regulators; those without an expression row stop the run or, with
    `data.missing_regulators: drop`, are left out with a warning."""
    absent = [r for r in regulators if r not in row_of]
    if not absent:
        return regulators
    if config.missing_regulators == "error" or len(absent) == len(regulators):
        raise DeepRegError(f"{paths['regulators']}: regulator '{absent[0]}' is not a gene of the expression matrix "
                           f"{paths['expression']} ({len(absent)} of {len(regulators)} regulators missing; "
                           "data.missing_regulators: drop leaves them out)")
    log.warning("%s: dropped %d of %d regulators that are not genes of %s (data.missing_regulators: drop): %s",
                paths["regulators"], len(absent), len(regulators), paths["expression"],
                ", ".join(absent[:10]) + (" ..." if len(absent) > 10 else ""))
    return tuple(r for r in regulators if r in row_of)


def _warn_all_missing(path, expression: np.ndarray, regulator_expression: np.ndarray) -> None:
    """One warning line counting the genes, conditions and regulators with no measured value at all."""
    counts = {"genes": (int(np.isnan(expression).all(axis=1).sum()), expression.shape[0]),
              "conditions": (int(np.isnan(expression).all(axis=0).sum()), expression.shape[1]),
              "regulators": (int(np.isnan(regulator_expression).all(axis=0).sum()), regulator_expression.shape[1])}
    if any(empty for empty, _ in counts.values()):
        shown = ", ".join(f"{empty} of {total} {what}" for what, (empty, total) in counts.items())
        log.warning("%s: %s have no measured value (every cell missing); they carry nothing to learn from",
                    path, shown)


def load_dataset(config: DataConfig, *, use_cache: bool = True) -> Dataset:
    """The dataset for a config, from the HDF5 cache when its fingerprint matches, else built and cached."""
    paths = input_paths(config)
    key = fingerprint(paths, config)
    cache_file = Path(config.cache_dir) / f"dataset-{key}.h5"
    if use_cache:
        remove_stale_partials(cache_file.parent)
    if use_cache and cache_file.is_file():
        try:
            return read_cache(cache_file)
        except CacheCheckFailed as error:
            log.warning("dataset cache %s failed its check (%s); rebuilding it", cache_file, error)
    dataset = build_dataset(config, paths)
    if use_cache:
        try:
            write_cache(dataset, cache_file)
        except WriteFailed as error:
            log.warning("%s; continuing without a dataset cache", error)
    return dataset


class CacheCheckFailed(Exception):
    """A cache file that cannot be read back whole: unreadable, another format, or a wrong checksum."""


def _strings(values) -> np.ndarray:
    return np.array([v.encode("utf-8") for v in values], dtype=object)


def content_checksum(dataset: Dataset) -> str:
    """SHA-256 of every array and name list of a dataset: what a cache read back must reproduce."""
    digest = hashlib.sha256()
    for name in ("sequences", "expression", "regulator_expression"):
        array = np.ascontiguousarray(getattr(dataset, name))
        digest.update(f"{name}{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    for name in CACHED_NAMES:
        digest.update(json.dumps([name, list(getattr(dataset, name))]).encode())
    return digest.hexdigest()


def write_cache(dataset: Dataset, path: Path) -> Path:
    """Write the cache whole or not at all, and keep it only if it reads back with the same checksum.

    The HDF5 file is assembled in memory and written by `write_bytes_atomically` (a partial name,
    a size check, a rename): the HDF5 library does not report a full disk reliably, Python's writes do.
    """
    write_bytes_atomically(path, _hdf5_image(dataset), "dataset cache")
    try:
        read_cache(path)
    except CacheCheckFailed as error:
        path.unlink(missing_ok=True)
        raise WriteFailed(f"{path}: the dataset cache did not read back as written ({error}); not kept") from None
    return path


def _hdf5_image(dataset: Dataset) -> bytes:
    with h5py.File(f"dataset-{dataset.fingerprint}.h5", "w", driver="core", backing_store=False) as store:
        text = h5py.string_dtype("utf-8")
        for name in CACHED_NAMES:
            store.create_dataset(name, data=_strings(getattr(dataset, name)), dtype=text)
        store.create_dataset("sequences", data=dataset.sequences, compression="gzip", compression_opts=4)
        store.create_dataset("expression", data=dataset.expression)
        store.create_dataset("regulator_expression", data=dataset.regulator_expression)
        store.attrs["fingerprint"] = dataset.fingerprint
        store.attrs["summary"] = json.dumps(dataset.summary)
        store.attrs["format"] = CACHE_FORMAT
        store.attrs["checksum"] = content_checksum(dataset)
        store.flush()
        return store.id.get_file_image()


def read_cache(path: Path) -> Dataset:
    """The cached dataset; `CacheCheckFailed` unless it is whole, of this format, and its checksum holds."""
    try:
        dataset, expected = _read_hdf5(path)
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise CacheCheckFailed(f"unreadable: {error}") from None
    if content_checksum(dataset) != expected:
        raise CacheCheckFailed("its arrays do not match the checksum written with them")
    return dataset


def _read_hdf5(path: Path) -> tuple[Dataset, str]:
    with h5py.File(path, "r") as store:
        if store.attrs.get("format") != CACHE_FORMAT:
            raise KeyError(f"cache format {store.attrs.get('format')}, expected {CACHE_FORMAT}")

        def strings(name):
            return tuple(v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in store[name][()])

        dataset = Dataset(
            genes=strings("genes"), conditions=strings("conditions"), regulators=strings("regulators"),
            sequences=store["sequences"][()], expression=store["expression"][()],
            regulator_expression=store["regulator_expression"][()], symbols=strings("symbols"),
            regulator_symbols=strings("regulator_symbols"), fingerprint=str(store.attrs["fingerprint"]),
            summary=json.loads(store.attrs["summary"]),
        )
        if "checksum" not in store.attrs:
            raise KeyError("written without a checksum (by an earlier version)")
        return dataset, str(store.attrs["checksum"])
