"""The search space of a study: named parameters over dotted config keys, compiled for each engine.

A parameter is one of
- `choices: [a, b, ...]` (categorical; values may be lists such as `[512, 512]`),
- `choices: {label: {dotted.key: value, ...}, ...}` (a named variant: several keys set together),
- `int: [low, high]` with optional `step` and `log`,
- `float: [low, high]` with optional `log` (log-uniform) or `step`,
- `fixed: value` (the same value in every trial),
each optionally with `when: {other.param: value-or-list}` (conditional: the parameter exists only
when the other parameter, or the base config's value of that key, is one of the listed values).
A bare list is short for `choices`, a bare scalar for `fixed`.

The same space compiles to Optuna suggestions, an Optuna grid and keras-tuner hyperparameters;
`points()` lists every point worth validating against the run config.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from typing import Any, Iterator, Mapping

from deepreg._config import lookup_dotted, yaml_literal
from deepreg.errors import DeepRegError

SCALARS = (str, int, float, bool, type(None))
KINDS = ("choices", "int", "float", "fixed")
PARAM_KEYS = {"choices", "int", "float", "fixed", "when", "step", "log"}
MAX_POINTS = 5000
_EXPONENT = re.compile(r"^[-+]?\d+(\.\d*)?[eE][-+]?\d+$")


def _yaml_number(value: Any) -> Any:
    """PyYAML reads 1e-7 (no dot) as a string; in a space it is meant as a number."""
    return float(value) if isinstance(value, str) and _EXPONENT.match(value) else value


def encode(value: Any) -> Any:
    """The form a value takes inside Optuna and keras-tuner: scalars as they are, others as one-line YAML."""
    return value if isinstance(value, SCALARS) else yaml_literal(value)


def same(value: Any, expected: Any) -> bool:
    """Config values compare equal across list/tuple and one-element-list/scalar forms."""
    if isinstance(value, (list, tuple)) and not isinstance(expected, (list, tuple)):
        return len(value) == 1 and same(value[0], expected)
    if isinstance(expected, (list, tuple)) and not isinstance(value, (list, tuple)):
        return len(expected) == 1 and same(value, expected[0])
    if isinstance(value, (list, tuple)):
        return len(value) == len(expected) and all(same(a, b) for a, b in zip(value, expected))
    if isinstance(value, bool) or isinstance(expected, bool):
        return value is expected
    if isinstance(value, (int, float)) and isinstance(expected, (int, float)):
        return math.isclose(float(value), float(expected), rel_tol=1e-9, abs_tol=0.0)
    return str(value) == str(expected) if isinstance(value, str) or isinstance(expected, str) else value == expected


@dataclasses.dataclass(frozen=True)
class Param:
    """One named parameter of the space."""

    name: str
    kind: str  # choices, variant, int, float, fixed
    choices: tuple = ()
    variants: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    value: Any = None
    when: tuple[tuple[str, tuple], ...] = ()

    @property
    def encoded(self) -> tuple:
        return tuple(encode(v) for v in self.choices) if self.kind == "choices" else tuple(self.variants)

    def decode(self, encoded: Any) -> Any:
        if self.kind == "choices":
            for raw, code in zip(self.choices, self.encoded):
                if code == encoded or same(code, encoded):
                    return raw
            raise DeepRegError(f"parameter '{self.name}': value {encoded!r} is not one of its choices")
        if self.kind == "int":
            return int(encoded)
        if self.kind == "float":
            return float(encoded)
        return encoded

    def overrides(self, value: Any) -> dict[str, Any]:
        """The dotted config keys this parameter sets for a chosen value."""
        if self.kind == "variant":
            return dict(self.variants[value])
        return {self.name: value}

    def describe(self) -> str:
        if self.kind == "choices":
            text = "choices " + ", ".join(str(encode(c)) for c in self.choices)
        elif self.kind == "variant":
            text = "variants " + ", ".join(self.variants)
        elif self.kind == "fixed":
            text = f"fixed {encode(self.value)}"
        else:
            text = f"{self.kind} {self.low}..{self.high}" + (" log" if self.log else "") + (
                f" step {self.step}" if self.step else "")
        if self.when:
            text += " when " + ", ".join(f"{key} in {list(values)}" for key, values in self.when)
        return text


class Space:
    """An ordered set of parameters (conditions may only refer to parameters listed before them)."""

    def __init__(self, params: list[Param], raw: Mapping[str, Any]):
        self.params = params
        self.raw = dict(raw)
        self.by_name = {p.name: p for p in params}

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None, *, source: str, config_keys: set[str]) -> "Space":
        raw = dict(raw or {})
        params: list[Param] = []
        for name, entry in raw.items():
            params.append(_parse_param(str(name), entry, source, config_keys, {p.name: p for p in params}))
        return cls(params, raw)

    def __bool__(self) -> bool:
        return bool(self.params)

    @property
    def tuned(self) -> list[Param]:
        return [p for p in self.params if p.kind != "fixed"]

    def active(self, param: Param, chosen: Mapping[str, Any], base: Mapping[str, Any]) -> bool:
        for key, allowed in param.when:
            if key in self.by_name and key not in chosen:
                return False  # the parent parameter is itself inactive
            value = chosen[key] if key in chosen else lookup_dotted(base, key)
            if not any(same(value, option) for option in allowed):
                return False
        return True

    def resolve(self, pick, base: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Choose a value for every active parameter with `pick(param)`; return (chosen, overrides)."""
        chosen: dict[str, Any] = {}
        for param in self.params:
            if not self.active(param, chosen, base):
                continue
            chosen[param.name] = param.value if param.kind == "fixed" else pick(param)
        return chosen, self.overrides(chosen)

    def overrides(self, chosen: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, value in chosen.items():
            result.update(self.by_name[name].overrides(value))
        return result

    # Optuna ------------------------------------------------------------------------------------
    def suggest(self, trial, base: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Ask an Optuna trial for every active parameter (decoded values, dotted overrides)."""
        def pick(param: Param) -> Any:
            if param.kind in ("choices", "variant"):
                return param.decode(trial.suggest_categorical(param.name, param.encoded))
            if param.kind == "int":
                return trial.suggest_int(param.name, int(param.low), int(param.high), step=int(param.step or 1),
                                         log=param.log)
            return trial.suggest_float(param.name, float(param.low), float(param.high), step=param.step, log=param.log)
        return self.resolve(pick, base)

    def from_optuna_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Decoded values of a finished trial's params (fixed parameters are not stored by Optuna)."""
        return {name: self.by_name[name].decode(value) if name in self.by_name else value
                for name, value in params.items()}

    def grid(self, source: str) -> dict[str, list]:
        grid: dict[str, list] = {}
        for param in self.tuned:
            if param.when:
                raise DeepRegError(f"{source}: key 'space.{param.name}': the grid sampler cannot take conditional "
                                   "parameters (use sampler type tpe or random, or list the combinations as variants)")
            if param.kind in ("choices", "variant"):
                grid[param.name] = list(param.encoded)
            elif param.kind == "int":
                grid[param.name] = list(range(int(param.low), int(param.high) + 1, int(param.step or 1)))
            else:
                raise DeepRegError(f"{source}: key 'space.{param.name}': the grid sampler needs choices or ints, "
                                   "not a float range")
        return grid

    def grid_size(self, source: str) -> int:
        return math.prod(len(values) for values in self.grid(source).values()) if self.tuned else 1

    def baseline(self, base: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """The Optuna params that reproduce the base config, or (None, why not)."""
        chosen: dict[str, Any] = {}
        params: dict[str, Any] = {}
        for param in self.params:
            if not self.active(param, chosen, base):
                continue
            if param.kind == "fixed":
                chosen[param.name] = param.value
                continue
            if param.kind == "variant":
                labels = [label for label, keys in param.variants.items()
                          if all(same(lookup_dotted(base, key), value) for key, value in keys.items())]
                if not labels:
                    return None, f"no variant of '{param.name}' matches the base config"
                chosen[param.name] = params[param.name] = labels[0]
                continue
            value = lookup_dotted(base, param.name)
            if param.kind == "choices":
                matches = [c for c in param.choices if same(value, c)]
                if not matches:
                    return None, f"the base value of '{param.name}' ({encode(value)}) is not one of its choices"
                chosen[param.name] = matches[0]
                params[param.name] = encode(matches[0])
                continue
            number = value[0] if isinstance(value, (list, tuple)) and len(value) == 1 else value
            if not isinstance(number, (int, float)) or not param.low <= number <= param.high:
                return None, f"the base value of '{param.name}' ({encode(value)}) is outside {param.low}..{param.high}"
            if param.log and number <= 0:
                return None, f"the base value of '{param.name}' ({number}) is not positive"
            chosen[param.name] = params[param.name] = int(number) if param.kind == "int" else float(number)
        return params, ""

    def points(self, base: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every combination of choices, variants and range ends (ints: every value when few), as overrides."""
        def values(param: Param) -> list:
            if param.kind == "fixed":
                return [param.value]
            if param.kind in ("choices", "variant"):
                return list(param.choices if param.kind == "choices" else param.variants)
            if param.kind == "int":
                step = int(param.step or 1)
                every = list(range(int(param.low), int(param.high) + 1, step))
                return every if len(every) <= 8 else [int(param.low), int(param.high)]
            return [float(param.low), float(param.high)]

        def walk(index: int, chosen: dict[str, Any]) -> Iterator[dict[str, Any]]:
            if index == len(self.params):
                yield self.overrides(chosen)
                return
            param = self.params[index]
            if not self.active(param, chosen, base):
                yield from walk(index + 1, chosen)
                return
            for value in values(param):
                yield from walk(index + 1, {**chosen, param.name: value})

        yield from itertools.islice(walk(0, {}), MAX_POINTS)

    # keras-tuner -------------------------------------------------------------------------------
    def declare_keras_tuner(self, hp, base: Mapping[str, Any]) -> None:
        """Declare every parameter on a keras_tuner.HyperParameters (conditions as conditional scopes)."""
        for param in self.tuned:
            scopes = []
            skip = False
            for key, allowed in param.when:
                if key in self.by_name:
                    parent = self.by_name[key]
                    if parent.kind not in ("choices", "variant"):
                        raise DeepRegError(f"space.{param.name}: keras-tuner conditions need a choices parameter, "
                                           f"'{key}' is {parent.kind}")
                    codes = [_kt_value(parent, v) for v in allowed]
                    scopes.append((key, codes))
                elif not any(same(lookup_dotted(base, key), option) for option in allowed):
                    skip = True
            if skip:
                continue
            _declare_nested(hp, param, scopes)

    def from_keras_tuner(self, hp, base: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        def pick(param: Param) -> Any:
            raw = hp.values[param.name]
            if param.kind == "choices":
                return param.choices[[_kt_value(param, c) for c in param.choices].index(raw)]
            return param.decode(raw)
        return self.resolve(pick, base)


def _kt_choices(param: Param) -> list:
    values = list(param.choices) if param.kind == "choices" else list(param.variants)
    if param.kind == "variant":
        return values
    if all(isinstance(v, bool) for v in values):
        return values
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return values
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values]
    if all(isinstance(v, str) for v in values):
        return values
    return [str(encode(v)) for v in values]


def _kt_value(param: Param, value: Any) -> Any:
    """The keras-tuner form of one choice of `param` (keras-tuner needs one type per choice)."""
    choices = list(param.choices) if param.kind == "choices" else list(param.variants)
    codes = _kt_choices(param)
    for raw, code in zip(choices, codes):
        if same(raw, value):
            return code
    raise DeepRegError(f"space.{param.name}: {value!r} is not one of its choices")


def _declare_nested(hp, param: Param, scopes: list) -> None:
    if scopes:
        key, codes = scopes[0]
        with hp.conditional_scope(key, codes):
            _declare_nested(hp, param, scopes[1:])
        return
    if param.kind in ("choices", "variant"):
        hp.Choice(param.name, _kt_choices(param))
    elif param.kind == "int":
        hp.Int(param.name, int(param.low), int(param.high), step=int(param.step or 1),
               sampling="log" if param.log else "linear")
    else:
        hp.Float(param.name, float(param.low), float(param.high), step=param.step,
                 sampling="log" if param.log else "linear")


def _parse_param(name: str, entry: Any, source: str, config_keys: set[str], earlier: Mapping[str, Param]) -> Param:
    where = f"{source}: key 'space.{name}'"
    if isinstance(entry, list):
        entry = {"choices": entry}
    elif not isinstance(entry, Mapping):
        entry = {"fixed": entry}
    unknown = sorted(set(entry) - PARAM_KEYS)
    if unknown:
        raise DeepRegError(f"{where}: unknown field '{unknown[0]}' (expected one of choices, int, float, fixed; "
                           "optionally when, step, log)")
    kinds = [kind for kind in KINDS if kind in entry]
    if len(kinds) != 1:
        raise DeepRegError(f"{where}: expected exactly one of choices, int, float or fixed")
    kind = kinds[0]
    when = _parse_when(entry.get("when"), where, config_keys, earlier)
    is_variant = kind == "choices" and isinstance(entry["choices"], Mapping)
    if not is_variant and name not in config_keys:
        raise DeepRegError(f"{where}: '{name}' is not a config key (known keys start with data., model. or training.; "
                           "a named variant needs choices given as a mapping of labels)")
    if kind == "fixed":
        return Param(name, "fixed", value=_yaml_number(entry["fixed"]), when=when)
    if kind == "choices":
        choices = entry["choices"]
        if is_variant:
            variants = {}
            for label, keys in choices.items():
                if not isinstance(keys, Mapping) or not keys:
                    raise DeepRegError(f"{where}: variant '{label}': expected a mapping of dotted config keys "
                                       "to values")
                for key in keys:
                    if key not in config_keys:
                        raise DeepRegError(f"{where}: variant '{label}': '{key}' is not a config key")
                variants[str(label)] = dict(keys)
            return Param(name, "variant", variants=variants, when=when)
        if not isinstance(choices, list) or not choices:
            raise DeepRegError(f"{where}: expected a non-empty list of choices")
        choices = [_yaml_number(c) for c in choices]
        codes = [encode(c) for c in choices]
        if len(set(map(str, codes))) != len(codes):
            raise DeepRegError(f"{where}: the choices repeat a value ({choices})")
        return Param(name, "choices", choices=tuple(choices), when=when)
    bounds = entry[kind]
    if isinstance(bounds, list):
        bounds = [_yaml_number(b) for b in bounds]
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds)):
        raise DeepRegError(f"{where}: expected {kind}: [low, high]")
    low, high = bounds
    if kind == "int" and not all(float(b).is_integer() for b in bounds):
        raise DeepRegError(f"{where}: expected integer bounds, got {bounds}")
    if not low < high:
        raise DeepRegError(f"{where}: expected low < high, got {bounds}")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise DeepRegError(f"{where}: log: expected true or false, got {log!r}")
    if log and low <= 0:
        raise DeepRegError(f"{where}: a log scale needs a positive low bound, got {low}")
    step = _yaml_number(entry.get("step"))
    if step is not None and (not isinstance(step, (int, float)) or step <= 0):
        raise DeepRegError(f"{where}: step: expected a positive number, got {step!r}")
    if log and step is not None and kind == "float":
        raise DeepRegError(f"{where}: a float range takes log or step, not both")
    if kind == "int":
        low, high = int(low), int(high)
        step = int(step) if step is not None else None
    return Param(name, kind, low=low, high=high, step=step, log=log, when=when)


def _parse_when(when: Any, where: str, config_keys: set[str], earlier: Mapping[str, Param]) -> tuple:
    if when is None:
        return ()
    if not isinstance(when, Mapping) or not when:
        raise DeepRegError(f"{where}: when: expected a mapping such as {{training.optimizer: sgd}}")
    parsed = []
    for key, values in when.items():
        if key not in earlier and key not in config_keys:
            raise DeepRegError(f"{where}: when: '{key}' is neither an earlier parameter of the space nor a config key")
        values = tuple(values) if isinstance(values, list) else (values,)
        parent = earlier.get(key)
        if parent is not None and parent.kind in ("choices", "variant"):
            options = parent.choices if parent.kind == "choices" else tuple(parent.variants)
            for value in values:
                if not any(same(value, option) for option in options):
                    raise DeepRegError(f"{where}: when: {value!r} is not one of the choices of '{key}'")
        parsed.append((str(key), values))
    return tuple(parsed)
