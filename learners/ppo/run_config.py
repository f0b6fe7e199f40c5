"""The config of a GLAM training run (`llmrl run CONFIG`), one section per component."""
from __future__ import annotations

from dataclasses import dataclass, field

from actors.env_runner import RunnerConfig
from actors.scorer_pool import PoolConfig
from cluster.ray_runtime import RayConfig
from learners.ppo.config import PPOConfig
from policies.config import BackendConfig
from policies.value_head import ValueHeadConfig


@dataclass(frozen=True)
class TrainConfig:
    """How long to train and how often to record."""

    total_env_steps: int = 256
    """Stop after this many env steps (all runners together)."""
    steps_per_update: int = 8
    """Steps each env takes per rollout; one PPO update per round of rollouts."""
    checkpoint_every: int = 1
    """Write a checkpoint every this many updates (and always at the end)."""
    keep_checkpoints: int = 3
    """Checkpoints kept on disk (newest)."""
    output_dir: str = "runs"
    """Runs are written to OUTPUT_DIR/NAME."""
    seed: int = 0
    """Seeds the learner's minibatch order and the runners (runner i uses runner.seed + i)."""
    success_window: int = 100
    """Success rate and mean return are over the last this many finished episodes."""
    overlap_rollouts: bool = False
    """Start the next rollouts before each PPO update (they then run on weights one version old,
    counted by ppo.max_policy_lag); off: rollouts and updates alternate."""


@dataclass(frozen=True)
class RunConfig:
    """A whole run: where it runs, the model, the scorer pool, the env runners, PPO, the schedule."""

    name: str = "glam_babyai"
    """Run name: outputs go to train.output_dir/name."""
    ray: RayConfig = field(default_factory=RayConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    value_head: ValueHeadConfig = field(default_factory=ValueHeadConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    num_runners: int = 1
    """EnvRunner actors, each stepping runner.num_envs envs."""
    runner_cpus: float = 0.25
    """Ray CPUs reserved per env runner (they mostly wait on the scorer)."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        from cluster.config import ConfigError

        for where, value in (("num_runners", self.num_runners), ("runner.num_envs", self.runner.num_envs),
                             ("train.steps_per_update", self.train.steps_per_update),
                             ("pool.num_workers", self.pool.num_workers), ("ppo.epochs", self.ppo.epochs),
                             ("train.success_window", self.train.success_window)):
            if value < 1:
                raise ConfigError(f"{where}: must be at least 1, got {value}")
        import envs  # noqa: F401  (registers the ids)
        import gymnasium

        if self.runner.env_id not in gymnasium.registry:
            known = ", ".join(sorted(k for k in gymnasium.registry if k.startswith("llmrl/")))
            raise ConfigError(f"runner.env_id: {self.runner.env_id!r} is not a registered env; choose one of {known}")

    @property
    def steps_per_round(self) -> int:
        return self.num_runners * self.runner.num_envs * self.train.steps_per_update
