"""The config of an ICPI run (`llmrl run configs/icpi_<env>.yaml`): a YAML with `method: icpi`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from actors.scorer_pool import PoolConfig
from cluster.ray_runtime import RayConfig
from learners.icpi.baselines import AgentKind
from learners.icpi.config import ICPIConfig
from policies.config import BackendConfig

@dataclass(frozen=True)
class IcpiEnvConfig:
    """Which ICPI env, and how it writes states."""

    id: str = "llmrl/icpi-chain-v0"
    """A registered ICPI env id (llmrl/icpi-<name>-v0)."""
    hint: bool = True
    """State lines carry hints (everything after the first `and`); ablating them hurts."""
    kwargs: dict = field(default_factory=dict)
    """Further keyword arguments for gymnasium.make."""


@dataclass(frozen=True)
class IcpiTrainConfig:
    """How long to run and where to write."""

    total_env_steps: int = 100
    """Stop at the first episode end at or after this many env steps."""
    seed: int = 0
    """Seeds the env's first reset and the agent."""
    output_dir: str = "runs"
    """Runs are written to OUTPUT_DIR/NAME."""


@dataclass(frozen=True)
class ICPIRunConfig:
    """A whole ICPI (or baseline) run: the agent, the env, the LLM and where it runs, the schedule."""

    method: Literal["icpi"] = "icpi"
    """Marks the YAML as an ICPI run (GLAM configs have no method key)."""
    name: str = "icpi_chain"
    """Run name: outputs go to train.output_dir/name."""
    agent: AgentKind = "icpi"
    """icpi, or a baseline: tabular_q, matching, no_argmax (policy prompt only), random."""
    env: IcpiEnvConfig = field(default_factory=IcpiEnvConfig)
    icpi: ICPIConfig = field(default_factory=ICPIConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    use_ray: bool = True
    """Ask the LLM through a Ray ScorerPool (false: an in-process backend)."""
    train: IcpiTrainConfig = field(default_factory=IcpiTrainConfig)

    def __post_init__(self):
        from cluster.config import ConfigError

        if self.train.total_env_steps < 1:
            raise ConfigError(f"train.total_env_steps: must be at least 1, got {self.train.total_env_steps}")
        if self.pool.num_workers < 1:
            raise ConfigError(f"pool.num_workers: must be at least 1, got {self.pool.num_workers}")
        import envs  # noqa: F401  (registers the ids)
        import gymnasium

        if self.env.id not in gymnasium.registry:
            known = ", ".join(sorted(k for k in gymnasium.registry if "icpi" in k)) or "none registered"
            raise ConfigError(f"env.id: {self.env.id!r} is not a registered env; ICPI envs: {known}")


def config_method(path: str | Path) -> str:
    """The `method` of a run config YAML: 'glam' when it has none."""
    from cluster.config import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or "method" not in data:
        return "glam"
    if data["method"] != "icpi":
        raise ConfigError(f"{path}: method: {data['method']!r} is not allowed; write method: icpi, "
                          f"or leave the key out for GLAM")
    return "icpi"
