"""The config of an ICPI run (`llmrl run configs/icpi_<env>.yaml`, `method: icpi`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from actors.pool_config import PoolConfig
from cluster.config import ConfigError
from cluster.ray_runtime import RayConfig
from learners.algorithm import ScheduleConfig
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
class IcpiTrainConfig(ScheduleConfig):
    """How long to run, where to write, how often to checkpoint (ICPI checkpoints between episodes)."""

    total_env_steps: int = 100
    """Stop at the first episode end at or after this many env steps."""


@dataclass(frozen=True)
class ICPIRunConfig:
    """A whole ICPI (or baseline) run: the agent, the env, the LLM and where it runs, the schedule."""

    method: Literal["icpi"] = "icpi"
    """The method this config runs (see cluster/methods.py)."""
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
    """Ask the LLM through a Ray scorer pool (false: an in-process backend). Baselines without an LLM start no Ray."""
    train: IcpiTrainConfig = field(default_factory=IcpiTrainConfig)

    def __post_init__(self):
        import envs  # noqa: F401  (registers the ids)
        import gymnasium

        if self.env.id not in gymnasium.registry:
            known = ", ".join(sorted(k for k in gymnasium.registry if "icpi" in k)) or "none registered"
            raise ConfigError(f"env.id: {self.env.id!r} is not a registered env; ICPI envs: {known}")
