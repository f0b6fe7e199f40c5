"""The config of a GLAM training run (`llmrl run CONFIG` with `method: glam`), one section per component."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from actors.env_runner import RunnerConfig
from actors.pool_config import PoolConfig, worker_resources
from cluster.config import ConfigError, check_env_id, check_range
from cluster.ray_runtime import RayConfig
from learners.algorithm import ScheduleConfig
from learners.ppo.config import PPOConfig
from policies.config import BackendConfig
from policies.value_head import ValueHeadConfig


@dataclass(frozen=True)
class TrainConfig(ScheduleConfig):
    """How long to train and how often to record."""

    steps_per_update: int = 8
    """Steps each env takes per rollout; one PPO update per round of rollouts."""
    success_window: int = 100
    """Success rate and mean return are over the last this many finished episodes."""
    overlap_rollouts: bool = False
    """Start the next rollouts before each PPO update (they then run on weights one version old,
    counted by ppo.max_policy_lag); off: rollouts and updates alternate."""
    random_baseline_episodes: int = 100
    """At the end, play this many episodes of the run's env with a uniform random policy (no LLM; seconds on
    BabyAI) and report its success rate beside the run's first and last success_window episodes; 0: skip."""

    def __post_init__(self):
        super().__post_init__()
        check_range(self, "steps_per_update", "success_window", ge=1)
        check_range(self, "random_baseline_episodes", ge=0)


@dataclass(frozen=True)
class LearnerConfig:
    """Where the learner (policy, value head, optimizer) runs: with use_ray, a Ray actor holding one
    placement-group bundle of these resources, so the driver never holds the model."""

    cpus: float = 1.0
    """Ray CPUs reserved for the learner actor."""
    gpus: float = 0.0
    """Ray GPUs reserved for the learner actor (set backend.device: cuda with them)."""
    threads: int = 0
    """torch intra-op threads of the learner: 0 as Ray sets them (one per whole reserved CPU), -1 every
    core of its node (on a laptop, where the learner and the scorers take turns: a small `cpus`, every core)."""

    def __post_init__(self):
        check_range(self, "cpus", "gpus", ge=0)
        check_range(self, "threads", ge=-1)


@dataclass(frozen=True)
class RunConfig:
    """A whole GLAM run: where it runs, the model, the scorer pool, the env runners, the learner, PPO, the schedule."""

    method: Literal["glam"] = "glam"
    """The method this config runs (see cluster/methods.py)."""
    name: str = "glam_babyai"
    """Run name: outputs go to train.output_dir/name."""
    use_ray: bool = True
    """Run the scorer pool, env runners and learner as Ray actors; false: everything in this process."""
    ray: RayConfig = field(default_factory=RayConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    value_head: ValueHeadConfig = field(default_factory=ValueHeadConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    num_runners: int = 1
    """EnvRunner actors, each stepping runner.num_envs envs."""
    runner_cpus: float = 0.25
    """Ray CPUs reserved per env runner (they mostly wait on the scorer)."""
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        check_range(self, "num_runners", ge=1)
        check_range(self, "runner_cpus", ge=0)
        try:
            worker_resources(self.pool, self.backend)
        except ValueError as e:
            raise ConfigError(f"pool: {e}") from None
        if self.backend.backend == "vllm":
            raise ConfigError("backend.backend: 'vllm' is not allowed for GLAM: PPO's value head needs hidden "
                              "states, which vLLM does not expose; use backend: transformers")
        check_env_id(self.runner.env_id, "runner.env_id")

    @property
    def steps_per_round(self) -> int:
        return self.num_runners * self.runner.num_envs * self.train.steps_per_update
