"""Frozen, typed configuration objects that round-trip through YAML, MLflow params and Optuna params.

Every concern (data, model, training, study spec, simulation, attribution) has one frozen dataclass
deriving from `Config`.
A config is written as nested mappings in YAML; flattened, its keys are dotted paths
(`sequence.filter_width`) whose values are YAML scalars or flow lists, which is how it is logged as
MLflow params and how an Optuna trial names the values it overrides.

This module is the one place that reads config YAML (`load_yaml`: a file's mapping, with `from:`
resolved), refuses unknown keys (`check_keys`, naming the file and the key), parses and applies
dotted `--set` overrides (`parse_overrides`, `Config.with_updates`), finds dotted keys
(`lookup_dotted`) and writes values in their one-line YAML form (`yaml_literal`). An error raised
while a config is built, in its `__post_init__` too, starts with the file (or option) it came from.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, get_args, get_origin

import yaml

from deepreg.errors import DeepRegError

C = TypeVar("C", bound="Config")


def _describe(source: str | None, key: str) -> str:
    return f"{source}: key '{key}'" if source else f"key '{key}'"


def _coerce(value: Any, annotation: Any, key: str, source: str | None) -> Any:
    """Convert a value read from YAML or a params string into the annotated field type."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    where = _describe(source, key)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key, source)
            except DeepRegError as error:
                errors.append(str(error))
        raise DeepRegError(errors[-1] if errors else f"{where}: unexpected value {value!r}")
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise DeepRegError(f"{where}: got {value!r}, expected one of {choices}")
        return value
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            value = [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key, source) for v in value)
        if len(value) != len(args):
            raise DeepRegError(f"{where}: expected {len(args)} values, got {len(value)} ({value!r})")
        return tuple(_coerce(v, a, key, source) for v, a in zip(value, args))
    if isinstance(annotation, type) and issubclass(annotation, Config):
        if isinstance(value, annotation):
            return value
        if value is None:  # an empty section (`training:` with nothing under it) keeps the defaults
            value = {}
        if not isinstance(value, Mapping):
            raise DeepRegError(f"{where}: expected a mapping of {annotation.__name__} keys, got {value!r}")
        return annotation.from_dict(value, source=source, prefix=f"{key}.")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        raise DeepRegError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise DeepRegError(f"{where}: expected an integer, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise DeepRegError(f"{where}: expected an integer, got {value!r}") from None
        if number != int(number):
            raise DeepRegError(f"{where}: expected an integer, got {value!r}")
        return int(number)
    if annotation is float:
        if isinstance(value, bool):
            raise DeepRegError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise DeepRegError(f"{where}: expected a number, got {value!r}") from None
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise DeepRegError(f"{where}: expected a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config annotation {annotation!r} for {key}")


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every DeepREG configuration: frozen, typed, validated when built."""

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any] | None, *, source: str | None = None,
                  prefix: str = "") -> C:
        """Build from a mapping; unknown keys are refused with the list of known ones."""
        values = dict(values or {})
        types_ = cls.field_types()
        check_keys(values, types_, source=source, prefix=prefix)
        kwargs = {name: _coerce(value, types_[name], prefix + name, source) for name, value in values.items()}
        try:
            return cls(**kwargs)
        except DeepRegError as error:
            if not source or str(error).startswith(f"{source}:"):
                raise
            raise DeepRegError(f"{source}: {error}") from None

    @classmethod
    def from_yaml(cls: type[C], path: str | Path, section: str | None = None, *,
                  overrides: Mapping[str, Any] | None = None) -> C:
        """Read a YAML file (`from:` resolved; one `section` of it if given), then apply dotted `overrides`."""
        values = load_yaml(path, section)
        config = cls.from_dict(values, source=str(path), prefix=f"{section}." if section else "")
        return config.with_updates(overrides, source="--set") if overrides else config

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def to_params(self, prefix: str = "") -> dict[str, str]:
        """Flatten to dotted keys with YAML-literal string values (the form MLflow stores)."""
        params: dict[str, str] = {}
        for name, value in self.to_dict().items():
            _flatten_into(params, f"{prefix}{name}", value)
        return params

    @classmethod
    def from_params(cls: type[C], params: Mapping[str, str], prefix: str = "") -> C:
        """Inverse of `to_params`: read the flattened strings back into a config."""
        nested: dict[str, Any] = {}
        for key, text in params.items():
            if not key.startswith(prefix):
                continue
            value = yaml.safe_load(text) if isinstance(text, str) else text
            set_dotted(nested, key[len(prefix):], value)
        return cls.from_dict(nested, source="params")

    def with_updates(self: C, updates: Mapping[str, Any], *, source: str | None = None) -> C:
        """Return a copy with dotted-key overrides applied (how sweeps set a trial's values)."""
        merged = self.to_dict()
        for key, value in updates.items():
            set_dotted(merged, key, value, must_exist=True, source=source)
        return type(self).from_dict(merged, source=source)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` pairs as dotted keys and YAML values, for `Config.with_updates`."""
    overrides = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        if not separator or not key.strip():
            raise DeepRegError(f"--set {pair!r}: expected KEY=VALUE, e.g. training.epochs=5")
        try:
            overrides[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise DeepRegError(f"--set {pair!r}: the value is not valid YAML") from None
    return overrides


def check_keys(values: Mapping[str, Any], known, *, source: str | None, prefix: str = "") -> None:
    """Refuse the first key of `values` that is not in `known`, naming the file and the dotted key."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        where = f"{source}: " if source else ""
        raise DeepRegError(f"{where}unknown key '{prefix}{unknown[0]}' (known keys: {', '.join(sorted(known))})")


def yaml_literal(value: Any) -> str:
    """A value as one line of YAML (`[64, 64]`, `1.0e-07`, `global`): how params and Optuna choices hold it."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def lookup_dotted(values: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted key of nested mappings, or None where the path does not exist."""
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _flatten_into(params: dict[str, str], key: str, value: Any) -> None:
    if isinstance(value, dict):
        for sub, sub_value in value.items():
            _flatten_into(params, f"{key}.{sub}", sub_value)
        return
    params[key] = yaml_literal(value)


def set_dotted(target: dict[str, Any], key: str, value: Any, *, must_exist: bool = False,
               source: str | None = None) -> None:
    """Set `a.b.c` in nested mappings (making sections on the way unless `must_exist`)."""
    parts = key.split(".")
    node = target
    for depth, part in enumerate(parts[:-1]):
        if (must_exist and part not in node) or (part in node and not isinstance(node[part], dict)):
            raise DeepRegError(f"{_describe(source, key)}: '{'.'.join(parts[:depth + 1])}' is not a config section")
        node = node.setdefault(part, {})
    if must_exist and parts[-1] not in node:
        raise DeepRegError(f"{_describe(source, key)}: no such key (known: {', '.join(sorted(node))})")
    node[parts[-1]] = value


def read_yaml_mapping(path: str | Path, section: str | None = None) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping (optionally one section of it), as written (see `load_yaml`)."""
    path = Path(path)
    if not path.is_file():
        raise DeepRegError(f"{path}: no such config file")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise DeepRegError(f"{path}: byte {error.start} is not UTF-8 text (expected a UTF-8 YAML file)") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise DeepRegError(f"{path}:{line} is not valid YAML ({getattr(error, 'problem', error)})") from None
    if content is None:
        raise DeepRegError(f"{path}: the file is empty; expected a mapping of keys at the top level "
                           "(leave out --config to use the defaults)")
    if not isinstance(content, dict):
        raise DeepRegError(f"{path}: expected a mapping of keys at the top level")
    return _section(content, section, path)


def _section(values: dict[str, Any], section: str | None, path: str | Path) -> dict[str, Any]:
    if section is None:
        return values
    part = values.get(section, {}) or {}
    if not isinstance(part, dict):
        raise DeepRegError(f"{path}: key '{section}' must be a mapping")
    return part


def load_yaml(path: str | Path, section: str | None = None) -> dict[str, Any]:
    """A config file's mapping (or one section of it), with every `from:` resolved.

    The file, and each of its top-level sections, may start from another file: `model: {from:
    ../models/concat.yaml, task: classification}` reads that file (relative to this one, itself
    resolved the same way) and applies the section's other keys on top, deeply. A section may also start
    from a whole run file (`model: {from: bilinear-random.yaml}`): it reads that file's own `model:` section.
    """
    return _section(_resolved(Path(path), ()), section, path)


def resolve_from(values: Mapping[str, Any], folder: Path, source: str) -> dict[str, Any]:
    """`values` (a mapping given inline, e.g. a spec's `base`) with `from:` resolved relative to `folder`."""
    return _resolve_sections(dict(values), folder, source, ())


def _resolved(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, path.resolve()))
        raise DeepRegError(f"{path}: key 'from': the files start from each other ({chain})")
    seen = (*seen, path.resolve())
    return _resolve_sections(read_yaml_mapping(path), path.parent, str(path), seen)


def _resolve_sections(values: dict[str, Any], folder: Path, source: str, seen: tuple[Path, ...]) -> dict[str, Any]:
    for key, section in values.items():
        if isinstance(section, dict):
            values[key] = _start_from(section, folder, source, seen, section_key=key)
    return _start_from(values, folder, source, seen)


def _start_from(values: dict[str, Any], folder: Path, source: str, seen: tuple[Path, ...],
                section_key: str | None = None) -> dict[str, Any]:
    """A mapping with a `from: FILE` key: that file's mapping (its `section_key` section, when the mapping is
    a section and the file is a whole run file that has one), updated (deeply) by the mapping's other keys."""
    if "from" not in values:
        return values
    if not isinstance(values["from"], str):
        raise DeepRegError(f"{source}: key 'from': expected a file path, got {values['from']!r}")
    base_path = folder / values["from"]
    if not base_path.is_file():
        raise DeepRegError(f"{source}: key 'from': {base_path} is not a file")
    merged = _resolved(base_path, seen)
    if section_key is not None and isinstance(merged.get(section_key), dict):
        merged = merged[section_key]
    _deep_update(merged, {key: value for key, value in values.items() if key != "from"})
    return merged


def _deep_update(target: dict, updates: Mapping[str, Any]) -> None:
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value
