"""The method registry: a root config's `method` names its algorithm (and, through it, its config class).

A new method is one folder in learners/ and one line here."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Sequence

from cluster.config import ConfigError, apply_overrides, from_dict, read_yaml

METHODS = {
    "glam": "learners.ppo.algorithm:GlamAlgorithm",
    "icpi": "learners.icpi.algorithm:IcpiAlgorithm",
    "dqn_prior": "learners.dqn_prior.algorithm:DQNPriorAlgorithm",
    "cql_prior": "learners.cql_prior.algorithm:CQLPriorAlgorithm",
    "rllib": "learners.rllib.algorithm:RLlibAlgorithm",
}


def algorithm_class(method: str) -> type:
    """The algorithm class registered as `method`."""
    if method not in METHODS:
        raise ConfigError(f"method: {method!r} is not a registered method; choose one of {', '.join(METHODS)}")
    module, name = METHODS[method].split(":")
    return getattr(importlib.import_module(module), name)


def config_from_dict(data: Any, where: str | None = None, overrides: Sequence[str] = ()) -> Any:
    """A root config from its plain-data form: `method` picks the config class; dotted overrides first."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping of config sections, got {data!r}")
    data = apply_overrides(data, overrides)
    if "method" not in data:
        raise ConfigError(f"{where or 'config'}: no `method:` key; add one of: {', '.join(f'method: {m}' for m in METHODS)}")
    cls = algorithm_class(data["method"]).config_class
    return from_dict(cls, data, where=where)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Any:
    """Read a run config YAML (any method), with `--set`-style dotted overrides applied."""
    return config_from_dict(read_yaml(path), where=str(path), overrides=overrides)
