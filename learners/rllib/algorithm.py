"""RLlib baselines on the algorithm contract: one iteration is one `algo.train()` of an RLlib algorithm (new API
stack) on a symbolic view of the same registered env the LLM methods use, so that `llmrl run`, resume, Tune and
`llmrl compare` treat it like any other method.

Metrics are mapped onto the shared columns (env_steps, episodes, success_rate, mean_return over the last
train.success_window episodes; loss_policy / loss_value / entropy / approx_kl for PPO, loss_td / q_mean for
DQN). Checkpoints hold RLlib's own state (`algo.get_state()`: modules, optimizers, connectors, counters)
written with learners/state_io (safetensors + JSON) rather than RLlib's pickle files, and are restored with
`algo.set_state()`; nothing read back is unpickled.
"""
from __future__ import annotations

import functools
import importlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from cluster.config import ConfigError
from cluster.ray_runtime import ensure_ray
from learners.algorithm import Plot
from learners.rllib.config import ALGORITHMS, SECTIONS, RLlibRunConfig
from learners.state_io import load_state, save_state

SYMBOLIC_ENV = "llmrl_symbolic"
"""The name our symbolic envs are registered under with Ray Tune's env registry."""
CONV_7X7 = [[16, [2, 2], 1], [32, [2, 2], 1], [64, [2, 2], 1]]
"""A conv net for minigrid's 7x7 view (RLlib has no default for that size)."""
LEARNER_COLUMNS = {"policy_loss": "loss_policy", "vf_loss": "loss_value", "entropy": "entropy",
                   "mean_kl_loss": "approx_kl", "qf_loss": "loss_td", "qf_mean": "q_mean"}
"""RLlib learner metrics -> our column names."""


def _make_env(env_config: dict):
    from learners.rllib.symbolic import make_symbolic_env

    return make_symbolic_env(env_config["id"], env_config.get("kwargs"), env_config.get("observation", "auto"))


def _log_success(window: int, *, episode, metrics_logger, **_) -> None:
    """RLlib episode-end callback: the episode's success (from its last info) into the success_rate window."""
    info = episode.get_infos(-1) or {}
    metrics_logger.log_value("success_rate", float(bool(info.get("success", False))), reduce="mean", window=window)


def build_rllib_config(config: RLlibRunConfig):
    """RLlib's AlgorithmConfig for `config`: the env, everything in the driver process unless `rllib:` says
    otherwise (env_runners.num_env_runners, learners.num_learners), the seed, the success callback, then the
    `rllib:` sections on top."""
    from ray.tune.registry import register_env

    register_env(SYMBOLIC_ENV, _make_env)
    module, name = ALGORITHMS[config.algorithm]
    env = config.env
    rl = (getattr(importlib.import_module(module), name)()
          .environment(SYMBOLIC_ENV, env_config={"id": env.id, "kwargs": dict(env.kwargs),
                                                 "observation": env.observation})
          .env_runners(num_env_runners=0)
          .learners(num_learners=0)
          .debugging(seed=config.train.seed)
          .reporting(metrics_num_episodes_for_smoothing=config.train.success_window)
          .callbacks(on_episode_end=functools.partial(_log_success, config.train.success_window)))
    if "BabyAI" in env.id and env.observation in ("auto", "image"):
        rl = rl.rl_module(model_config={"conv_filters": CONV_7X7})
    if env.observation == "image_mission":
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        from learners.rllib.mission_module import MissionConvModule

        rl = rl.rl_module(rl_module_spec=RLModuleSpec(module_class=MissionConvModule))  # rllib.rl_module's
        # model_config reaches it through RLlib's merge
    for section in SECTIONS:
        settings = config.section(section)
        if settings:
            try:
                rl = getattr(rl, section)(**settings)
            except TypeError as e:
                raise ConfigError(f"rllib.{section}: {e}; see RLlib's AlgorithmConfig.{section}") from None
    return rl


class RLlibAlgorithm:
    """An RLlib algorithm behind the contract (see the module docstring)."""

    config_class = RLlibRunConfig
    plots = (Plot("curves.png", "env_steps", ("success_rate", "mean_return")),)

    def __init__(self, config: RLlibRunConfig, runtime: Any = None):
        self.config = config
        ensure_ray(config.ray)
        self.algo = build_rllib_config(config).build_algo()
        self.iteration = 0
        self.env_steps = 0
        self.episodes = 0
        self.last: dict[str, float] = {}

    @staticmethod
    def resource_roles(config: RLlibRunConfig) -> list[tuple[str, dict[str, float]]]:
        """RLlib's own actors: remote env runners and learners when the `rllib:` section asks for them (by
        default both run in the driver's process, which reserves nothing)."""
        runners, learners = config.section("env_runners"), config.section("learners")
        runner = {"CPU": float(runners.get("num_cpus_per_env_runner", 1))}
        learner = {k: float(v) for k, v in (("CPU", learners.get("num_cpus_per_learner", 1)),
                                            ("GPU", learners.get("num_gpus_per_learner", 0))) if float(v) > 0}
        return ([(f"rllib_env_runner[{i}]", runner) for i in range(int(runners.get("num_env_runners", 0)))]
                + [(f"rllib_learner[{i}]", learner) for i in range(int(learners.get("num_learners", 0)))])

    def step(self) -> dict[str, float]:
        result = self.algo.train()
        runners = result.get("env_runners", {})
        self.iteration += 1
        self.env_steps = int(result.get("num_env_steps_sampled_lifetime",
                                        runners.get("num_env_steps_sampled_lifetime", 0)))
        self.episodes = int(runners.get("num_episodes_lifetime", self.episodes))
        learner = result.get("learners", {}).get("default_policy", {})
        row = {"env_steps": float(self.env_steps), "episodes": float(self.episodes),
               "success_rate": float(runners.get("success_rate", math.nan)),
               "mean_return": float(runners.get("episode_return_mean", math.nan)),
               "mean_length": float(runners.get("episode_len_mean", math.nan)),
               **{ours: float(learner[theirs]) for theirs, ours in LEARNER_COLUMNS.items() if theirs in learner}}
        self.last = row
        return row

    def finished(self) -> bool:
        return self.env_steps >= self.config.train.total_env_steps

    def checkpointable(self) -> bool:
        return True

    def save(self, directory: Path) -> None:
        save_state(directory, "rllib", {"algo": _plain(self.algo.get_state()),
                                        "counters": {"iteration": self.iteration, "env_steps": self.env_steps,
                                                     "episodes": self.episodes}, "last": self.last})

    def restore(self, directory: Path) -> None:
        state = load_state(directory, "rllib")
        self.algo.set_state(state["algo"])
        counters = state["counters"]
        self.iteration, self.env_steps, self.episodes = counters["iteration"], counters["env_steps"], counters["episodes"]
        self.last = state["last"]

    def progress(self, row: dict[str, float]) -> dict[str, str]:
        return {"episodes": str(self.episodes), "success": _shown(row["success_rate"]), "ret": _shown(row["mean_return"])}

    def summary(self) -> dict[str, Any]:
        return {"method": "rllib", "algorithm": self.config.algorithm, "env": self.config.env.id,
                "seed": self.config.train.seed, "updates": self.iteration, "env_steps": self.env_steps,
                "episodes": self.episodes, "success_rate": self.last.get("success_rate", math.nan),
                "mean_return": self.last.get("mean_return", math.nan)}

    def stop(self) -> None:
        self.algo.stop()


def _plain(tree: Any) -> Any:
    """RLlib's state with NumPy scalars as Python numbers (what learners/state_io stores)."""
    if isinstance(tree, dict):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_plain(v) for v in tree)
    return tree.item() if isinstance(tree, np.generic) else tree


def _shown(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"
