"""The GLAM training job: scorer pool and env runners as Ray actors, the PPO learner in the driver."""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections import deque
from pathlib import Path

import ray
import yaml
from tqdm import tqdm

from actors.env_runner import EnvRunner, RemoteScorer
from actors.scorer_pool import ScorerPool, StoredWeights
from cluster.checkpoint import (checkpoint_path, latest_checkpoint, load_checkpoint, prune_checkpoints,
                                restore_rng_state, rng_state, save_checkpoint)
from cluster.config import from_dict, to_dict
from cluster.metrics import MetricsLogger, plot_curves
from cluster.ray_runtime import ensure_ray
from learners.ppo.run_config import RunConfig
from learners.ppo.learner import PPOLearner
from learners.rollout import Episode, Rollout
from policies.llm_policy import LLMPolicy


def new_run_dir(config: RunConfig) -> Path:
    """OUTPUT_DIR/NAME, or NAME-2, NAME-3... when taken."""
    base = Path(config.train.output_dir) / config.name
    run_dir, k = base, 1
    while run_dir.exists():
        k += 1
        run_dir = base.with_name(f"{base.name}-{k}")
    return run_dir


def load_run_config(run_dir: Path) -> RunConfig:
    """The config a run was started with (run_dir/config.yaml)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no config.yaml: is it a run directory written by `llmrl run`?")
    return from_dict(RunConfig, yaml.safe_load(path.read_text()), where=str(path))


class GlamJob:
    """One training run; `run()` trains until the env-step budget and returns the run directory."""

    def __init__(self, config: RunConfig, run_dir: Path | None = None, progress: bool = True):
        self.resuming = run_dir is not None
        self.run_dir = run_dir if run_dir is not None else new_run_dir(config)
        self.config = config
        self.progress = progress
        self.counters = {"updates": 0, "env_steps": 0, "episodes": 0}
        self.recent: deque[Episode] = deque(maxlen=config.train.success_window)
        self.policy = LLMPolicy(config.backend, config.value_head)
        self.learner = PPOLearner(self.policy, config.ppo, seed=config.train.seed)
        if self.resuming:
            self._restore()
        else:
            self.run_dir.mkdir(parents=True)
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))

    def _restore(self) -> None:
        path = latest_checkpoint(self.run_dir)
        if path is None:
            raise FileNotFoundError(f"no checkpoint in {self.run_dir / 'checkpoints'} to resume from")
        state = load_checkpoint(path)
        self.policy.load_weights(state["weights"], state["version"])
        self.learner.optimizer.load_state_dict(state["optimizer"])
        self.learner.generator.set_state(state["learner_generator"])
        self.learner.stale_steps, self.learner.dropped_steps = state["stale_steps"], state["dropped_steps"]
        self.counters = dict(state["counters"])
        self.recent.extend(Episode(**e) for e in state["recent_episodes"])
        restore_rng_state(state["rng"])

    def _checkpoint(self) -> Path:
        path = save_checkpoint(checkpoint_path(self.run_dir, self.counters["updates"]), {
            "weights": self.policy.get_weights(), "version": self.policy.version,
            "optimizer": self.learner.optimizer.state_dict(), "learner_generator": self.learner.generator.get_state(),
            "stale_steps": self.learner.stale_steps, "dropped_steps": self.learner.dropped_steps,
            "counters": dict(self.counters), "recent_episodes": [dataclasses.asdict(e) for e in self.recent],
            "rng": rng_state(), "config": to_dict(self.config),
        })
        prune_checkpoints(self.run_dir, self.config.train.keep_checkpoints)
        return path

    def _start_actors(self):
        c = self.config
        pool = ray.remote(ScorerPool).options(num_cpus=0, max_concurrency=c.num_runners + 4).remote(
            c.backend, c.pool, c.value_head)
        self._publish_weights(pool)
        # A resumed run seeds its runners afresh (from the update count) rather than replaying old envs.
        seed = c.runner.seed + 7919 * self.counters["updates"]
        runner_config = dataclasses.replace(c.runner, seed=seed)
        runners = [ray.remote(EnvRunner).options(num_cpus=c.runner_cpus).remote(runner_config, RemoteScorer(pool), i)
                   for i in range(c.num_runners)]
        return pool, runners

    def _publish_weights(self, pool) -> None:
        """The learner's weights to every scorer worker, put in the object store once, here."""
        ray.get(pool.load_weights.remote(StoredWeights.put(self.policy.get_weights()), self.policy.version))

    def run(self) -> Path:
        c = self.config
        ensure_ray(c.ray)
        pool, runners = self._start_actors()
        bar = tqdm(total=c.train.total_env_steps, initial=self.counters["env_steps"], unit="step",
                   disable=not self.progress, file=sys.stderr)
        try:
            resume_after = self.counters["updates"] if self.resuming else None
            with MetricsLogger(self.run_dir, resume_after=resume_after) as logger:
                pending = None
                while self.counters["env_steps"] < c.train.total_env_steps:
                    row, pending = self._round(pool, runners, pending)
                    logger.log(self.counters["updates"], row)
                    bar.update(int(row["round_env_steps"]))
                    bar.set_postfix(episodes=int(self.counters["episodes"]), success=_shown(row["success_rate"]),
                                    ret=_shown(row["mean_return"]), sps=f"{row['steps_per_s']:.2f}")
                    done = self.counters["env_steps"] >= c.train.total_env_steps
                    if done or self.counters["updates"] % c.train.checkpoint_every == 0:
                        self._checkpoint()
        finally:
            bar.close()
            ray.get(pool.shutdown.remote())
            for actor in [*runners, pool]:
                ray.kill(actor)
        plot_curves(self.run_dir, x="env_steps", ys=["success_rate", "mean_return", "loss_value", "entropy"])
        return self.run_dir

    def _launch_rollouts(self, runners) -> list[ray.ObjectRef]:
        return [r.rollout.remote(self.config.train.steps_per_update) for r in runners]

    def _round(self, pool, runners, pending: list[ray.ObjectRef] | None) -> tuple[dict[str, float], list | None]:
        """Rollouts from every runner, one PPO update, weights to the pool: the metrics row, and the
        next round's rollouts when they were launched before the update (train.overlap_rollouts)."""
        train = self.config.train
        start = time.perf_counter()
        rollouts: list[Rollout] = ray.get(pending or self._launch_rollouts(runners))
        collect = time.perf_counter() - start
        steps = sum(r.num_steps for r in rollouts)
        more = self.counters["env_steps"] + steps < train.total_env_steps
        pending = self._launch_rollouts(runners) if train.overlap_rollouts and more else None
        t = time.perf_counter()
        metrics = self.learner.update(rollouts)
        update = time.perf_counter() - t
        t = time.perf_counter()
        self._publish_weights(pool)
        sync = time.perf_counter() - t
        finished = [e for r in rollouts for e in r.episodes]
        self.recent.extend(finished)
        self.counters["updates"] += 1
        self.counters["env_steps"] += steps
        self.counters["episodes"] += len(finished)
        return {
            **{k: float(v) for k, v in self.counters.items()},
            "round_env_steps": float(steps),
            "success_rate": _mean([float(e.success) for e in self.recent]),
            "mean_return": _mean([e.ret for e in self.recent]),
            "steps_per_s": steps / (time.perf_counter() - start),
            "time_collect_s": collect,
            "time_scoring_s": max(r.timers["scoring"] for r in rollouts),
            "time_env_step_s": max(r.timers["env_step"] for r in rollouts),
            "time_update_s": update,
            "time_weight_sync_s": sync,
            "policy_version": float(self.policy.version),
            **metrics,
        }, pending


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _shown(value: float) -> str:
    """A progress-bar figure: two decimals, or '-' before any episode has ended."""
    return "-" if math.isnan(value) else f"{value:.2f}"
