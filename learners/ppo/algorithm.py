"""GLAM on the algorithm contract: env runners sample actions from the LLM's scores, a PPO learner
updates the policy (LoRA or full) and its value head, and the weights go back to the scorers.

With use_ray the scorer pool, the env runners and the learner are Ray actors, the learner in its own
placement-group bundle (the driver holds no model); without, all of it runs in this process and the
runners score with the learner's own policy. One iteration = one round of rollouts + one PPO update.

Faults: a runner that dies mid-rollout is respawned from its state before that rollout and redoes it
(same step ids, so the learner's ledger counts nothing lost or duplicated); a scorer
worker that dies is restarted by the pool; a learner that dies raises LearnerLost, on which the experiment
restarts the run from its latest checkpoint. Checkpoints hold every runner's state, so a resumed run
continues each env where it was.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections import deque
from pathlib import Path
from typing import Any

from actors.env_runner import EnvRunner, check_state
from actors.learner_actor import ACTOR_LOST, LearnerHost, LearnerLost
from actors.pool_config import scorer_roles
from actors.scorer_pool import RemoteScorer
from actors.weight_sync import ObjectStoreSync, SharedPolicySync
from cluster.runtime import Resources
from cluster.scale import RAY_FILE, pool_actor_name, write_ray_file
from learners.algorithm import Plot
from learners.ppo.learner import PPOLearner
from learners.ppo.run_config import RunConfig
from learners.rollout import Episode, Rollout
from learners.state_io import load_state, save_state

log = logging.getLogger(__name__)

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
        self.first: list[Episode] = []
        """The run's first success_window finished episodes (success at the start, for the summary)."""
        self._random_baseline: dict[str, float] | None = None
        learner = config.learner
        self.learner = runtime.spawn(
            LearnerHost, functools.partial(PPOLearner.build, config.backend, config.value_head, config.ppo,
                                           config.train.seed, learner.threads, config.runner.temperature),
            resources=Resources(learner.cpus, learner.gpus))
        if runtime.distributed:
            self.pool_name = pool_actor_name()  # how `llmrl scale` finds it (see announce)
            self.ray_file: Path | None = None
            self.scorer = runtime.scorer(config.backend, config.pool, config.value_head,
                                         concurrency=config.num_runners + 4, name=self.pool_name)
            self.sync = ObjectStoreSync(self.scorer.actor)
        else:  # one process: the runners score with the learner's own policy
            self.scorer, self.sync = self.learner.obj.learner.policy, SharedPolicySync()
        self.runners: list[Any] = []
        self.runner_states: list[dict | None] = [None] * config.num_runners
        """Each runner's state after its last collected rollout (None: start fresh), for respawns and checkpoints."""
        self.runner_restarts = 0
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
        rollouts = self._gather(self.pending or self._launch_rollouts())
        collect = time.perf_counter() - start
        steps = sum(r.num_steps for r in rollouts)
        more = self.env_steps + steps < train.total_env_steps
        self.pending = self._launch_rollouts() if train.overlap_rollouts and more else None
        t = time.perf_counter()
        metrics = self._learner_call("update", rollouts)
        update = time.perf_counter() - t
        t = time.perf_counter()
        version = self._publish_weights()
        sync = time.perf_counter() - t
        finished = [e for r in rollouts for e in r.episodes]
        self.recent.extend(finished)
        self.first.extend(finished[:self.config.train.success_window - len(self.first)])
        self.iteration += 1
        self.env_steps += steps
        self.episodes += len(finished)
        pool = self._pool_stats()
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
            "runner_restarts": float(self.runner_restarts),
            "scorer_restarts": float(pool.get("restarts", 0)),
            "scorer_workers": float(pool.get("workers", 0)),  # 0 in one process: no Ray workers
            **metrics,
        }

    def finished(self) -> bool:
        return self.env_steps >= self.config.train.total_env_steps

    def checkpointable(self) -> bool:
        return True

    def announce(self, run_dir: Path) -> None:
        """With Ray: write RUN_DIR/ray.json, where `llmrl scale RUN_DIR` finds the scorer pool (removed by stop)."""
        if self.runtime.distributed:
            self.ray_file = Path(run_dir) / RAY_FILE
            write_ray_file(run_dir, self.pool_name)

    def save(self, directory: Path) -> None:
        self._learner_call("save", str(Path(directory) / LEARNER_DIR))
        save_state(directory, "glam", {"counters": self._counters(), "runner_restarts": self.runner_restarts,
                                       "runners": self.runner_states,
                                       "recent_episodes": [dataclasses.asdict(e) for e in self.recent],
                                       "first_episodes": [dataclasses.asdict(e) for e in self.first]})

    def restore(self, directory: Path) -> None:
        self.runtime.get(self.learner.call("restore", str(Path(directory) / LEARNER_DIR)))
        state = load_state(directory, "glam")
        counters = state["counters"]
        self.iteration, self.env_steps, self.episodes = counters["updates"], counters["env_steps"], counters["episodes"]
        self.recent.clear()
        self.recent.extend(Episode(**e) for e in state["recent_episodes"])
        self.first = [Episode(**e) for e in state.get("first_episodes", [])]  # absent in older checkpoints
        self.runner_restarts = state.get("runner_restarts", 0)
        saved = state.get("runners") or []  # absent in checkpoints written before runner states were
        for runner_state in filter(None, saved):  # here, before a runner actor fails to start on it
            check_state(self.config.runner, runner_state)
        n = self.config.num_runners  # runners added on resume (num_runners raised) start fresh
        self.runner_states = (saved + [None] * n)[:n]

    def progress(self, row: dict[str, float]) -> dict[str, str]:
        return {"episodes": str(self.episodes), "success": _shown(row["success_rate"]),
                "ret": _shown(row["mean_return"]), "sps": f"{row['steps_per_s']:.2f}"}

    def summary(self) -> dict[str, Any]:
        success = _mean([float(e.success) for e in self.recent])
        return {"method": "glam", "env": self.config.runner.env_id, "seed": self.config.train.seed,
                **self._counters(), "success_rate": success, "mean_return": _mean([e.ret for e in self.recent]),
                "success_rate_first": _mean([float(e.success) for e in self.first]),
                "success_window": self.config.train.success_window, **self.random_baseline()}

    def random_baseline(self) -> dict[str, float]:
        """A uniform random policy's success rate on the run's env (train.random_baseline_episodes; {} when 0),
        played once in this process: the figure a learning run must beat."""
        episodes = self.config.train.random_baseline_episodes
        if episodes and self._random_baseline is None:
            from cluster.eval_command import UniformScorer, evaluate

            runner = self.config.runner
            result = evaluate(UniformScorer(), runner.env_id, episodes, num_envs=runner.num_envs,
                              seed=self.config.train.seed + 1_000_003, env_kwargs=dict(runner.env_kwargs))
            self._random_baseline = {"random_success_rate": result["success_rate"], "random_episodes": episodes}
        return self._random_baseline or {}

    def stop(self) -> None:
        if self.runtime.distributed:
            self.scorer.shutdown()
            if self.ray_file is not None:
                self.ray_file.unlink(missing_ok=True)
        for handle in [*self.runners, self.learner]:
            self.runtime.kill(handle)
        self.runners = []

    # ---- parts -----------------------------------------------------------------------------
    def _counters(self) -> dict[str, int]:
        return {"updates": self.iteration, "env_steps": self.env_steps, "episodes": self.episodes}

    def _start_runners(self) -> None:
        """The env runners, after the learner's weights reached the scorers; each continues from its state
        (a resumed run: where the checkpoint left it)."""
        self._publish_weights()
        self.runners = [self._spawn_runner(i) for i in range(self.config.num_runners)]

    def _spawn_runner(self, index: int) -> Any:
        scorer = RemoteScorer(self.scorer.actor) if self.runtime.distributed else self.scorer  # no shutdown hook
        return self.runtime.spawn(EnvRunner, self.config.runner, scorer, index, state=self.runner_states[index],
                                  resources=Resources(self.config.runner_cpus))

    def _publish_weights(self) -> int:
        """The learner's weights to every scorer (through the weight sync); returns their version."""
        return self._learner_call("publish", self.sync)

    def _learner_call(self, method: str, *args) -> Any:
        """A learner method's result; LearnerLost when the learner actor has died."""
        try:
            return self.runtime.get(self.learner.call(method, *args))
        except ACTOR_LOST as e:
            raise LearnerLost(f"the learner actor died during {method} ({type(e).__name__})") from e

    def _launch_rollouts(self) -> list[Any]:
        return [r.call("collect", self.config.train.steps_per_update) for r in self.runners]

    def _gather(self, futures: list[Any]) -> list[Rollout]:
        return [self._collected(i, future) for i, future in enumerate(futures)]

    def _collected(self, i: int, future: Any) -> Rollout:
        """Runner i's rollout from `future` (its state after it kept). A runner that died is respawned from its
        state before that rollout and redoes it (same step ids), train.max_restarts times
        in a row at most."""
        attempt = 0
        while True:
            try:
                rollout, self.runner_states[i] = self.runtime.get(future)
                return rollout
            except ACTOR_LOST as e:
                if attempt >= self.config.train.max_restarts:
                    raise RuntimeError(f"env runner {i} died ({type(e).__name__}) {attempt + 1} time(s) in one "
                                       f"rollout: more than train.max_restarts={attempt} allows") from e
                log.warning("env runner %d died mid-rollout (%s); respawning it from its last state to redo "
                            "that rollout", i, type(e).__name__)
                self.runtime.kill(self.runners[i])  # frees its placement group
                self.runners[i] = self._spawn_runner(i)
                self.runner_restarts += 1
                attempt += 1
                future = self.runners[i].call("collect", self.config.train.steps_per_update)

    def _pool_stats(self) -> dict[str, Any]:
        """The scorer pool's counters (ScorerPool.stats); none in one process."""
        return self.runtime.get(self.scorer.actor.stats.remote()) if self.runtime.distributed else {}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _shown(value: float) -> str:
    """A progress-bar figure: two decimals, or '-' before any episode has ended."""
    return "-" if math.isnan(value) else f"{value:.2f}"
