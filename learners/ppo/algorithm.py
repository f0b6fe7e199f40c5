"""GLAM on the algorithm contract: env runners sample actions from the LLM's scores, a PPO learner
updates the policy (LoRA or full) and its value head, and the weights go back to the scorers.

With use_ray the scorer pool, the env runners and the learner are Ray actors, the learner in its own
placement-group bundle (the driver holds no model); without, all of it runs in this process and the
runners score with the learner's own policy. One iteration = one round of rollouts + one PPO update.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections import deque
from pathlib import Path
from typing import Any

from actors.env_runner import EnvRunner
from actors.learner_actor import LearnerHost
from actors.scorer_pool import RemoteScorer, scorer_roles
from actors.weight_sync import ObjectStoreSync, SharedPolicySync
from cluster.runtime import Resources
from learners.algorithm import Plot
from learners.ppo.learner import PPOLearner
from learners.ppo.run_config import RunConfig
from learners.rollout import Episode, Rollout
from learners.state_io import load_state, save_state

LEARNER_DIR = "learner"
"""Subdirectory of a checkpoint the learner writes (policy weights, optimizer, its RNG)."""


class GlamAlgorithm:
    """GLAM's PPO (see the module docstring)."""

    config_class = RunConfig
    plots = (Plot("curves.png", "env_steps", ("success_rate", "mean_return", "loss_value", "entropy")),)

    def __init__(self, config: RunConfig, runtime):
        self.config = config
        self.runtime = runtime
        self.iteration = 0
        self.env_steps = 0
        self.episodes = 0
        self.recent: deque[Episode] = deque(maxlen=config.train.success_window)
        learner = config.learner
        self.learner = runtime.spawn(
            LearnerHost, functools.partial(PPOLearner.build, config.backend, config.value_head, config.ppo,
                                           config.train.seed, learner.threads),
            resources=Resources(learner.cpus, learner.gpus))
        if runtime.distributed:
            self.scorer = runtime.scorer(config.backend, config.pool, config.value_head,
                                         concurrency=config.num_runners + 4)
            self.sync = ObjectStoreSync(self.scorer.actor)
        else:  # one process: the runners score with the learner's own policy
            self.scorer, self.sync = self.learner.obj.learner.policy, SharedPolicySync()
        self.runners: list[Any] = []
        self.pending: list[Any] | None = None
        """The next round's rollouts, launched before the update (train.overlap_rollouts)."""

    @staticmethod
    def resource_roles(config: RunConfig) -> list[tuple[str, dict[str, float]]]:
        """(role, placement bundle) of every actor a run starts: the learner, the scorer workers, the runners
        (in one process: only the learner's, whose policy also scores)."""
        learner = [("learner", Resources(config.learner.cpus, config.learner.gpus).bundle())]
        if not config.use_ray:
            return learner
        return [*learner,
                *scorer_roles(config.pool, config.backend),
                *[(f"env_runner[{i}]", Resources(config.runner_cpus).bundle()) for i in range(config.num_runners)]]

    # ---- the contract ----------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """Rollouts from every runner, one PPO update, weights to the scorers: the metrics row."""
        if not self.runners:
            self._start_runners()
        train = self.config.train
        start = time.perf_counter()
        rollouts: list[Rollout] = self.runtime.get(self.pending or self._launch_rollouts())
        collect = time.perf_counter() - start
        steps = sum(r.num_steps for r in rollouts)
        more = self.env_steps + steps < train.total_env_steps
        self.pending = self._launch_rollouts() if train.overlap_rollouts and more else None
        t = time.perf_counter()
        metrics = self.runtime.get(self.learner.call("update", rollouts))
        update = time.perf_counter() - t
        t = time.perf_counter()
        version = self._publish_weights()
        sync = time.perf_counter() - t
        finished = [e for r in rollouts for e in r.episodes]
        self.recent.extend(finished)
        self.iteration += 1
        self.env_steps += steps
        self.episodes += len(finished)
        return {
            **{k: float(v) for k, v in self._counters().items()},
            "round_env_steps": float(steps),
            "success_rate": _mean([float(e.success) for e in self.recent]),
            "mean_return": _mean([e.ret for e in self.recent]),
            "steps_per_s": steps / (time.perf_counter() - start),
            "time_collect_s": collect,
            "time_scoring_s": max(r.timers["scoring"] for r in rollouts),
            "time_env_step_s": max(r.timers["env_step"] for r in rollouts),
            "time_update_s": update,
            "time_weight_sync_s": sync,
            "policy_version": float(version),
            **metrics,
        }

    def finished(self) -> bool:
        return self.env_steps >= self.config.train.total_env_steps

    def checkpointable(self) -> bool:
        return True

    def save(self, directory: Path) -> None:
        self.runtime.get(self.learner.call("save", str(Path(directory) / LEARNER_DIR)))
        save_state(directory, "glam", {"counters": self._counters(),
                                       "recent_episodes": [dataclasses.asdict(e) for e in self.recent]})

    def restore(self, directory: Path) -> None:
        self.runtime.get(self.learner.call("restore", str(Path(directory) / LEARNER_DIR)))
        state = load_state(directory, "glam")
        counters = state["counters"]
        self.iteration, self.env_steps, self.episodes = counters["updates"], counters["env_steps"], counters["episodes"]
        self.recent.clear()
        self.recent.extend(Episode(**e) for e in state["recent_episodes"])

    def progress(self, row: dict[str, float]) -> dict[str, str]:
        return {"episodes": str(self.episodes), "success": _shown(row["success_rate"]),
                "ret": _shown(row["mean_return"]), "sps": f"{row['steps_per_s']:.2f}"}

    def summary(self) -> dict[str, Any]:
        success = _mean([float(e.success) for e in self.recent])
        return {"method": "glam", "env": self.config.runner.env_id, "seed": self.config.train.seed,
                **self._counters(), "success_rate": success, "mean_return": _mean([e.ret for e in self.recent])}

    def stop(self) -> None:
        if self.runtime.distributed:
            self.scorer.shutdown()
        for handle in [*self.runners, self.learner]:
            self.runtime.kill(handle)
        self.runners = []

    # ---- parts -----------------------------------------------------------------------------
    def _counters(self) -> dict[str, int]:
        return {"updates": self.iteration, "env_steps": self.env_steps, "episodes": self.episodes}

    def _start_runners(self) -> None:
        """The env runners, after the learner's weights reached the scorers. A resumed run seeds its
        runners afresh (from the update count) rather than replaying old envs."""
        c = self.config
        self._publish_weights()
        runner_config = dataclasses.replace(c.runner, seed=c.runner.seed + 7919 * self.iteration)
        scorer = RemoteScorer(self.scorer.actor) if self.runtime.distributed else self.scorer  # no shutdown hook
        self.runners = [self.runtime.spawn(EnvRunner, runner_config, scorer, i,
                                           resources=Resources(c.runner_cpus))
                        for i in range(c.num_runners)]

    def _publish_weights(self) -> int:
        """The learner's weights to every scorer (through the weight sync); returns their version."""
        return self.runtime.get(self.learner.call("publish", self.sync))

    def _launch_rollouts(self) -> list[Any]:
        return [r.call("rollout", self.config.train.steps_per_update) for r in self.runners]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _shown(value: float) -> str:
    """A progress-bar figure: two decimals, or '-' before any episode has ended."""
    return "-" if math.isnan(value) else f"{value:.2f}"
