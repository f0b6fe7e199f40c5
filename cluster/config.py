"""Frozen-dataclass configs built from plain dicts or YAML, validated on load.

Every error names the offending key (as a dotted path from the root, e.g. `ppo.lr`) and what is
allowed there. A section checks its own fields in `__post_init__` with `check_range` / `require`,
which raise `FieldError` naming only the field; the loader adds where the section sits.
"""
from __future__ import annotations

import dataclasses
import operator
import re
import types
from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value or key is not allowed; the message says which and what is."""


class FieldError(ConfigError):
    """A section's own field holds a value that is not allowed. Raised inside `__post_init__`, it names
    only the field; `from_dict` re-raises it as a ConfigError naming the dotted key (`backend.lora.r`)."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}: {value!r} is not allowed; {allowed}")


def require(ok: bool, field: str, value: Any, allowed: str) -> None:
    """Raise FieldError(field, value, allowed) unless `ok`; `allowed` says what is, e.g. "must be >= 1"."""
    if not ok:
        raise FieldError(field, value, allowed)


_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def check_range(config: Any, *fields: str, gt: float | None = None, ge: float | None = None,
                lt: float | None = None, le: float | None = None, none_ok: bool = False) -> None:
    """Check that each named field of `config` lies in the range given by the bounds (> gt, >= ge, < lt,
    <= le); a tuple field must have every item in range, None passes only with `none_ok`."""
    bounds = [(op, bound) for op, bound in ((">", gt), (">=", ge), ("<", lt), ("<=", le)) if bound is not None]
    allowed = " and ".join(f"{op} {bound}" for op, bound in bounds)
    for field in fields:
        value = getattr(config, field)
        if value is None:
            require(none_ok, field, value, f"must be a number {allowed}")
            continue
        items = value if isinstance(value, tuple) else (value,)
        require(all(_COMPARE[op](v, b) for v in items for op, b in bounds), field, value,
                ("each item must be " if isinstance(value, tuple) else "must be ")
                + ("null or " if none_ok else "") + allowed)


def check_env_id(env_id: str, field: str = "env.id") -> None:
    """ConfigError naming `field` unless `env_id` is a registered env (the llmrl/ ids are listed)."""
    import gymnasium

    import envs

    if env_id not in gymnasium.registry:
        raise ConfigError(f"{field}: {env_id!r} is not a registered env; choose one of {', '.join(envs.registered_ids())}")


def read_yaml(path: str | Path, example: str = "configs/glam_babyai.yaml") -> Any:
    """The plain data of a YAML file; a missing or unparsable file is a ConfigError naming it (and `example`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; give the path of a YAML file, e.g. {example}")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Read a YAML file into the frozen dataclass `cls`."""
    return from_dict(cls, read_yaml(path), where=str(path))


def from_dict(cls: type[T], data: Any, where: str | None = None) -> T:
    """Build dataclass `cls` from `data`, checking keys, types and each section's own checks recursively.
    Errors name the dotted key (`ppo.lr: ...`); `where` (a file, say) names the whole and prefixes them."""
    return _convert(cls, data, _Where(where))


def to_dict(config: Any) -> Any:
    """The plain-data form of a config (tuples become lists), suitable for YAML."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    return config


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_OVERRIDE_HELP = "write KEY=VALUE, e.g. ppo.lr=1e-5"


def set_dotted(data: dict, key: str, value: Any) -> dict:
    """A copy of nested mapping `data` with dotted `key` ("ppo.lr") set to `value`. Missing (or null)
    mappings on the way are created; the mappings along the path are copied, `data` is not changed."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"{key!r} has an empty name (keys are names joined by dots)")
    if not isinstance(data, dict):
        raise ConfigError(f"cannot set {key}: the config is {data!r}, not a mapping")
    result = dict(data)
    node = result
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"cannot set {key}: {'.'.join(parts[:i + 1])} is {child!r}, not a mapping")
        node[part] = node = dict(child)
    node[parts[-1]] = value
    return result


def parse_override(text: str) -> tuple[str, Any]:
    """Split "KEY=VALUE" into the dotted key and the value read as YAML ("1e-5" becomes a float too)."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key or not raw:
        raise ConfigError(f"override {text!r} is malformed; {_OVERRIDE_HELP} (null for none)")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or "unreadable"
        raise ConfigError(f"override {text!r}: its value is not valid YAML ({problem}); {_OVERRIDE_HELP}") from None
    if isinstance(value, str) and _FLOAT.fullmatch(raw):
        value = float(raw)  # YAML 1.1 reads 1e-5 (no dot) as a string
    return key, value


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """A new nested dict: `data` with each "KEY=VALUE" override set in order (values read as YAML:
    numbers, true/false, null, [lists], {maps}). Keys are not checked here; from_dict does that."""
    for text in overrides:
        key, value = parse_override(text)
        try:
            data = set_dotted(data, key, value)
        except ConfigError as e:
            raise ConfigError(f"override {text!r}: {e}; {_OVERRIDE_HELP}") from None
    return dict(data)


@dataclasses.dataclass(frozen=True)
class _Where:
    """Position in a config being built: the source's name (a file) and the dotted key ("" at the root)."""

    source: str | None
    key: str = ""

    def child(self, name: str) -> "_Where":
        return _Where(self.source, f"{self.key}.{name}" if self.key else name)

    def item(self, index: int) -> "_Where":
        return _Where(self.source, f"{self.key}[{index}]")

    def __str__(self) -> str:
        if not self.key:
            return self.source or "config"
        return f"{self.source}: {self.key}" if self.source else self.key


def _build_dataclass(cls: type, data: Any, where: _Where) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed keys: {', '.join(sorted(fields))}"
        )
    hints = get_type_hints(cls)
    values = {name: _convert(hints[name], value, where.child(name)) for name, value in data.items()}
    try:
        return cls(**values)
    except FieldError as e:  # the section's own check: it names the field, we add where the section is
        raise ConfigError(f"{where.child(e.field)}: {e.value!r} is not allowed; {e.allowed}") from None
    except ConfigError as e:  # a check across sections names its keys itself; add the source's name
        if where.source is None:
            raise
        raise ConfigError(f"{where.source}: {e}") from None
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{where}: {e}") from None


def _convert(tp: Any, value: Any, where: _Where) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, where)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{where}: {value!r} matches none of {tp}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        item = args[0] if args else Any
        return tuple(_convert(item, v, where.item(i)) for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported config type {tp}")  # a bug in a config class


__all__ = ["ConfigError", "FieldError", "apply_overrides", "check_env_id", "check_range", "from_dict", "load_yaml",
           "parse_override", "require", "set_dotted", "to_dict"]
