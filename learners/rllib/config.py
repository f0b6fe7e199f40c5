"""The config of an RLlib baseline run (`llmrl run CONFIG` with `method: rllib`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from cluster.config import ConfigError, check_env_id, check_range, require
from cluster.ray_runtime import RayConfig
from learners.algorithm import ScheduleConfig

ALGORITHMS = {"PPO": ("ray.rllib.algorithms.ppo", "PPOConfig"), "DQN": ("ray.rllib.algorithms.dqn", "DQNConfig")}
"""RLlib algorithms offered, and their AlgorithmConfig classes."""
SECTIONS = ("training", "env_runners", "learners", "rl_module", "evaluation", "reporting", "debugging")
"""Methods of RLlib's AlgorithmConfig that the `rllib:` section may call, each with its keyword arguments."""
MISSION_MODULE_DEFAULTS = {"conv_filters": [[16, 2, 1], [32, 2, 1], [64, 2, 1]], "word_dim": 32,
                           "mission_dim": 64, "hidden": 128}
"""The image_mission module's rllib.rl_module.model_config keys and defaults (learners/rllib/mission_module.py)."""


@dataclass(frozen=True)
class SymbolicEnvConfig:
    """A registered llmrl/ env seen through a numeric observation (learners/rllib/symbolic.py)."""

    id: str = "llmrl/BabyAI-GoToRedBall-v0"
    """A BabyAI-Text, FrozenLake or ICPI env id."""
    kwargs: dict = field(default_factory=dict)
    """Keyword arguments for gymnasium.make, as in the LLM configs (e.g. room_size, reward_scale)."""
    observation: Literal["auto", "image", "flat", "image_mission"] = "auto"
    """BabyAI: image (7x7x3 view, conv net; auto), flat (view + direction + mission words, MLP) or
    image_mission (view, direction and the mission's words in order: conv + GRU module, PPO only; for tasks
    whose mission changes between episodes)."""


@dataclass(frozen=True)
class RLlibTrainConfig(ScheduleConfig):
    success_window: int = 100
    """Success rate and mean return are over the last this many finished episodes."""

    def __post_init__(self):
        super().__post_init__()
        check_range(self, "success_window", ge=1)


@dataclass(frozen=True)
class RLlibRunConfig:
    """An RLlib algorithm on a symbolic view of one of our envs; one iteration = one `algo.train()`."""

    method: Literal["rllib"] = "rllib"
    name: str = "rllib_ppo_babyai"
    use_ray: bool = True
    """RLlib runs on Ray: must stay true."""
    ray: RayConfig = field(default_factory=RayConfig)
    algorithm: Literal["PPO", "DQN"] = "PPO"
    env: SymbolicEnvConfig = field(default_factory=SymbolicEnvConfig)
    rllib: dict = field(default_factory=dict)
    """RLlib's own settings: {section: {keyword: value}}, each section a method of its AlgorithmConfig
    (training, env_runners, learners, rl_module, evaluation, reporting, debugging), e.g.
    training: {lr: 3.0e-4, train_batch_size_per_learner: 256}."""
    train: RLlibTrainConfig = field(default_factory=RLlibTrainConfig)

    def __post_init__(self):
        require(self.use_ray, "use_ray", self.use_ray, "RLlib runs on Ray: set use_ray: true")
        for section, settings in self.rllib.items():
            if section not in SECTIONS:
                raise ConfigError(f"rllib.{section}: not an RLlib AlgorithmConfig section; use one of "
                                  f"{', '.join(SECTIONS)}")
            if not isinstance(settings, dict):
                raise ConfigError(f"rllib.{section}: expected a mapping of keyword arguments, got {settings!r}")
        check_env_id(self.env.id)
        require(self.env.observation != "image_mission" or self.algorithm == "PPO", "env.observation",
                self.env.observation, "the image_mission module has a value head, no Q head: use algorithm PPO, "
                "or observation image / flat for DQN")
        if self.env.observation == "image_mission":
            unknown = sorted(set(self.section("rl_module").get("model_config", {})) - set(MISSION_MODULE_DEFAULTS))
            if unknown:
                raise ConfigError(f"rllib.rl_module.model_config: {', '.join(unknown)} not a key of the image_mission "
                                  f"module; use {', '.join(MISSION_MODULE_DEFAULTS)}")

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.rllib.get(name, {}))
