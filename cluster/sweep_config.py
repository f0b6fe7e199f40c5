"""The sweep YAML of `llmrl tune`: a base run config, a search space over its dotted keys, a metric and
a Ray Tune scheduler, validated on load (every candidate value is applied to the base config and
checked before Ray starts). Example (configs/tune/smoke.yaml):

    base: ../glam_textchoice.yaml           # a run config; relative to this file (or the cwd)
    overrides: [train.total_env_steps=64]   # KEY=VALUE, applied to the base first
    search_space:                           # dotted key of the base -> one of:
      ppo.lr: {grid_search: [1.0e-3, 3.0e-3]}   #   grid_search: [..] / choice: [..]
      ppo.entropy_coef: {uniform: [0.0, 0.01]}  #   uniform: [lo, hi] / loguniform: [lo, hi]
    metric: success_rate                    # a column of the method's metrics rows
    mode: max                               # max | min
    scheduler: {type: asha, max_t: 8, grace_period: 2, reduction_factor: 2}   # fifo | asha | pbt
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from cluster.config import ConfigError, apply_overrides, check_range, from_dict, read_yaml, require, set_dotted

SPEC_KINDS = ("grid_search", "choice", "uniform", "loguniform")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass(frozen=True)
class SchedulerConfig:
    """Which Ray Tune trial scheduler; the fields of the other types stay unset (null)."""

    type: Literal["fifo", "asha", "pbt"] = "fifo"
    """fifo: every trial runs to its end; asha: stop weak trials early; pbt: population based training."""
    max_t: int | None = None
    """asha: the most Tune iterations a trial runs (GLAM: PPO updates, ICPI: episodes)."""
    grace_period: int | None = None
    """asha: iterations before a trial may be stopped (default 1)."""
    reduction_factor: float | None = None
    """asha: keep the best 1/reduction_factor at each rung (default 2)."""
    perturbation_interval: int | None = None
    """pbt: iterations between exploit / explore decisions (a checkpoint each time)."""
    hyperparam_mutations: dict | None = None
    """pbt: dotted key -> {choice: [..]} | {uniform: [lo, hi]} | {loguniform: [lo, hi]}."""
    quantile_fraction: float | None = None
    """pbt: the bottom fraction clones the top fraction (default 0.25)."""
    resample_probability: float | None = None
    """pbt: chance that a mutated value is resampled instead of perturbed (default 0.25)."""
    synch: bool | None = None
    """pbt: every trial waits at each perturbation point for the others (default false: asynchronous); suits small
    populations, or populations larger than max_concurrent_trials."""

    def __post_init__(self):
        own = {"asha": ("max_t", "grace_period", "reduction_factor"),
               "pbt": ("perturbation_interval", "hyperparam_mutations", "quantile_fraction", "resample_probability",
                        "synch")}
        for kind, names in own.items():
            for name in names:
                require(self.type == kind or getattr(self, name) is None, name, getattr(self, name),
                        f"only for scheduler type {kind} (this one is {self.type})")
        if self.type == "asha":
            require(self.max_t is not None, "max_t", None, "asha needs max_t (an iteration count >= 1)")
            check_range(self, "max_t", "grace_period", ge=1, none_ok=True)
            check_range(self, "reduction_factor", gt=1, none_ok=True)
            require((self.grace_period or 1) <= self.max_t, "grace_period", self.grace_period,
                    f"must be <= max_t ({self.max_t})")
        if self.type == "pbt":
            require(self.perturbation_interval is not None, "perturbation_interval", None,
                    "pbt needs perturbation_interval (iterations >= 1)")
            check_range(self, "perturbation_interval", ge=1)
            require(bool(self.hyperparam_mutations), "hyperparam_mutations", self.hyperparam_mutations,
                    "pbt needs a mapping of dotted key -> {choice: [..]} | {uniform: [lo, hi]} | "
                    "{loguniform: [lo, hi]}")
            for key, spec in self.hyperparam_mutations.items():
                parse_spec(f"hyperparam_mutations.{key}", spec, kinds=SPEC_KINDS[1:])
            check_range(self, "quantile_fraction", gt=0, le=0.5, none_ok=True)
            check_range(self, "resample_probability", ge=0, le=1, none_ok=True)


@dataclass(frozen=True)
class SweepConfig:
    """A Ray Tune sweep over a base run config (see the module docstring)."""

    base: str
    """Path of the base run config (any method): relative to the sweep file, else to the cwd."""
    metric: str
    """The metrics column trials are compared on (GLAM: success_rate, mean_return; ICPI: regret, return)."""
    mode: Literal["max", "min"]
    """Whether a larger (max) or smaller (min) metric is better."""
    overrides: tuple[str, ...] = ()
    """KEY=VALUE overrides applied to the base config before the search space."""
    search_space: dict = field(default_factory=dict)
    """Dotted key -> {grid_search: [..]} | {choice: [..]} | {uniform: [lo, hi]} | {loguniform: [lo, hi]}."""
    num_samples: int = 1
    """Samples of the search space (each grid point is run num_samples times)."""
    max_concurrent_trials: int | None = None
    """Trials running at once (null: as many as the cluster's resources hold)."""
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    name: str | None = None
    """The sweep's name (null: the sweep file's name); results go to output_dir/name."""
    output_dir: str = "runs/tune"
    """Where sweeps are written (Tune's storage_path)."""
    max_iterations: int | None = None
    """Stop every trial after this many Tune iterations (null: at the base config's own budget)."""
    trainable_cpus: float = 0.25
    """Ray CPUs of each trial's own process (the driver loop; ICPI baselines run in it)."""
    checkpoint_every: int | None = None
    """Checkpoint every this many Tune iterations (and at the end); null: the base's train.checkpoint_every."""
    keep_checkpoints: int | None = None
    """Checkpoints kept per trial (the best by metric, and always the latest); null: the base's
    train.keep_checkpoints."""
    max_failures: int = 0
    """Times a failed trial is restarted from its latest checkpoint."""
    best_scope: Literal["last", "avg", "last-5-avg", "last-10-avg", "all"] = "last-5-avg"
    """How the best trial is chosen from each trial's metric: its last value, the mean of all or of the last 5 / 10
    (RL metrics are noisy), or its best value at any iteration (all)."""

    def __post_init__(self):
        check_range(self, "num_samples", ge=1)
        check_range(self, "max_iterations", "max_concurrent_trials", "checkpoint_every", "keep_checkpoints", ge=1,
                    none_ok=True)
        check_range(self, "trainable_cpus", gt=0)  # its bundle is the group's first (Tune's), never an actor's
        check_range(self, "max_failures", ge=0)
        require(bool(self.metric), "metric", self.metric, "name a metrics column, e.g. success_rate or regret")
        require(self.name is None or bool(re.fullmatch(r"[\w.-]+", self.name)), "name", self.name,
                "letters, digits, '_', '-' and '.' only (it names a directory)")
        require(bool(self.search_space) or self.scheduler.type == "pbt" or self.num_samples > 1, "search_space",
                self.search_space, "give at least one dotted key to search (or num_samples > 1, or a pbt scheduler)")
        for key, spec in self.search_space.items():
            parse_spec(f"search_space.{key}", spec)

    def param_keys(self) -> list[str]:
        """Every dotted key a trial's params hold: the search space's, then PBT's mutations'."""
        mutations = self.scheduler.hyperparam_mutations or {}
        return list(self.search_space) + [k for k in mutations if k not in self.search_space]


def parse_spec(where: str, spec: Any, kinds: tuple[str, ...] = SPEC_KINDS) -> tuple[str, list]:
    """(kind, values) of one search spec `{kind: values}`; numbers written like 1e-5 are read as numbers."""
    allowed = " | ".join(f"{{{k}: {'[lo, hi]' if k.endswith('uniform') else '[...]'}}}" for k in kinds)
    require(isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in kinds, where, spec,
            f"write one of {allowed}")
    (kind, values), = spec.items()
    require(isinstance(values, list) and len(values) > 0, f"{where}.{kind}", values, "must be a non-empty list")
    values = [_number(v) for v in values]
    if kind.endswith("uniform"):
        require(len(values) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values),
                f"{where}.{kind}", values, "must be [lo, hi], two numbers")
        lo, hi = values
        require(lo <= hi and math.isfinite(lo) and math.isfinite(hi), f"{where}.{kind}", values,
                "must be [lo, hi] with lo <= hi")
        require(kind == "uniform" or lo > 0, f"{where}.{kind}", values, "loguniform bounds must be > 0")
    return kind, values


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, str) and _NUMBER.fullmatch(value.strip()) else value


@dataclass(frozen=True)
class Sweep:
    """A loaded sweep: its config, where it came from, and the base run config (overrides applied)."""

    config: SweepConfig
    path: Path
    base_path: Path
    base_data: dict
    """The base run config as plain data (its YAML with the sweep's overrides applied)."""
    method: str
    name: str

    @property
    def experiment_dir(self) -> Path:
        return (Path(self.config.output_dir) / self.name).resolve()

    def trial_data(self, params: dict[str, Any]) -> dict:
        """The run config (plain data) of a trial with `params` (dotted key -> value)."""
        data = self.base_data
        for key, value in params.items():
            data = set_dotted(data, key, value)
        return data


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep YAML, its base config and every value its search space can take."""
    from cluster.methods import config_from_dict

    path = Path(path)
    data = read_yaml(path, example="configs/tune/smoke.yaml")
    config = from_dict(SweepConfig, data, where=str(path))
    base_path = next((p for p in (path.parent / config.base, Path(config.base)) if p.is_file()), None)
    if base_path is None:
        raise ConfigError(f"{path}: base: {config.base} is not a file (looked next to the sweep file and in the cwd)")
    try:
        base_data = yaml.safe_load(base_path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{base_path} is not valid YAML: {e}") from None
    if not isinstance(base_data, dict):
        raise ConfigError(f"{base_path}: expected a mapping of config sections, got {base_data!r}")
    base_data = apply_overrides(base_data, config.overrides)
    base = config_from_dict(base_data, where=f"{path}: base {base_path}")
    mutations = config.scheduler.hyperparam_mutations or {}
    specs = [(f"search_space.{k}", k, s) for k, s in config.search_space.items()] + \
            [(f"scheduler.hyperparam_mutations.{k}", k, s) for k, s in mutations.items()]
    for where, key, spec in specs:
        _, values = parse_spec(where, spec)
        for value in values:
            try:
                config_from_dict(set_dotted(base_data, key, value), where=f"{where}={value!r} in base {base_path}")
            except ConfigError as e:
                raise ConfigError(f"{path}: {e}") from None
    return Sweep(config, path, base_path, base_data, base.method, config.name or path.stem)


__all__ = ["SchedulerConfig", "Sweep", "SweepConfig", "load_sweep", "parse_spec"]
