"""The ICPI job: one agent (ICPI or a baseline) on one ICPI env, metrics per env step and per episode.

LLM agents ask a Ray ScorerPool (or an in-process backend with use_ray: false) through a counting
client; baselines need no LLM and start no Ray.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml
from tqdm import tqdm

from cluster.config import to_dict
from learners.icpi.run_config import ICPIRunConfig
from cluster.metrics import MetricsLogger, plot_curves
from envs.icpi.base import IcpiEnv, TimeStep
from learners.icpi.baselines import LLM_AGENTS, make_agent
from learners.icpi.buffers import discounted_return
from learners.icpi.client import CountingClient, LLMStats, model_token_counter

FINAL_FRACTION = 0.25
"""`final_regret` is the mean regret of the episodes that ended in this last fraction of the env steps."""


def new_run_dir(output_dir: str, name: str) -> Path:
    """OUTPUT_DIR/NAME, or NAME-2, NAME-3... when taken."""
    base = Path(output_dir) / name
    run_dir, k = base, 1
    while run_dir.exists():
        k += 1
        run_dir = base.with_name(f"{base.name}-{k}")
    return run_dir


def make_icpi_env(config: ICPIRunConfig):
    """The Gymnasium env of the run (its `.unwrapped` is the IcpiEnv)."""
    import gymnasium

    import envs  # noqa: F401  (registers the ids)

    env = gymnasium.make(config.env.id, hint=config.env.hint, **config.env.kwargs)
    if not isinstance(env.unwrapped, IcpiEnv):
        raise ValueError(f"env.id {config.env.id!r} is not an ICPI env (an IcpiEnv); use llmrl/icpi-<name>-v0")
    return env


def make_llm_client(config: ICPIRunConfig):
    """The LLM the agent asks: a Ray ScorerPool by default, else an in-process backend."""
    if not config.use_ray:
        from policies.backend import make_backend

        return make_backend(config.backend)
    from actors.scorer_pool import ScorerPool
    from cluster.ray_runtime import ensure_ray

    ensure_ray(config.ray)
    return ScorerPool(config.backend, config.pool)


def step_cost(stats: LLMStats) -> dict[str, float]:
    """The metrics of what one env step cost the LLM."""
    row = {"llm_calls": stats.calls, "round_trips": stats.round_trips, "prompt_tokens": stats.prompt_tokens,
           "sampled_outputs": stats.sampled, "invalid_outputs": stats.invalid}
    if stats.sampled:
        row["invalid_rate"] = stats.invalid / stats.sampled
    return {k: float(v) for k, v in row.items()}


class IcpiJob:
    """One run; `run()` steps the env until the budget and returns the run directory.

    `client` reuses an LLM client (a ScorerPool, say) across jobs; by default LLM agents make one
    and shut it down at the end.
    """

    def __init__(self, config: ICPIRunConfig, progress: bool = True, client=None, count_tokens=None):
        self.config = config
        self.progress = progress
        self.run_dir = new_run_dir(config.train.output_dir, config.name)
        self.run_dir.mkdir(parents=True)
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        self._client, self._count_tokens = client, count_tokens
        self.episodes: list[dict[str, float]] = []

    def run(self) -> Path:
        c = self.config
        owned = None
        counting = None
        if c.agent in LLM_AGENTS:
            if self._client is None:
                owned = self._client = make_llm_client(c)
            count_tokens = self._count_tokens or model_token_counter(c.backend.model)
            counting = CountingClient(self._client, count_tokens)
        else:
            count_tokens = None
        env = make_icpi_env(c)
        agent = make_agent(c.agent, env.unwrapped, c.icpi, c.train.seed, counting, count_tokens)
        start = time.perf_counter()
        try:
            with MetricsLogger(self.run_dir) as logger:
                self._loop(env, agent, counting, logger)
        finally:
            if owned is not None and hasattr(owned, "shutdown"):
                owned.shutdown()
        wall = time.perf_counter() - start
        (self.run_dir / "summary.json").write_text(json.dumps(self.summary(counting, wall), indent=2))
        plot_curves(self.run_dir, x="step", ys=["regret"], path=self.run_dir / "regret.png")
        plot_curves(self.run_dir, x="step", ys=["regret", "llm_calls", "round_trips", "prompt_tokens"])
        return self.run_dir

    def _loop(self, env, agent, counting: CountingClient | None, logger: MetricsLogger) -> None:
        c = self.config
        gamma = env.unwrapped.gamma
        bar = tqdm(total=c.train.total_env_steps, unit="step", disable=not self.progress, file=sys.stderr)
        state, info = env.reset(seed=c.train.seed)
        optimal, trajectory, steps = info["optimal_return"], [], 0
        while True:
            before = counting.stats.snapshot() if counting else LLMStats()
            t = time.perf_counter()
            action = agent.act(state)
            act_time = time.perf_counter() - t
            next_state, reward, terminated, truncated, info = env.step(action)
            step = TimeStep(state, action, float(reward), bool(terminated), next_state)
            agent.observe(step)
            trajectory.append(step)
            steps += 1
            row = {"episode": float(len(self.episodes)), "used_model": float(agent.used_model),
                   "act_time_s": act_time, **step_cost((counting.stats if counting else LLMStats()) - before)}
            state, ended = next_state, terminated or truncated
            if ended:
                agent.end_episode(trajectory)
                ret = discounted_return(trajectory, gamma)
                episode = {"return": ret, "regret": optimal - ret, "episode_length": float(len(trajectory)),
                           "optimal_return": optimal, "end_step": float(steps)}
                self.episodes.append(episode)
                row.update({k: v for k, v in episode.items() if k != "end_step"})
                bar.set_postfix(regret=f"{episode['regret']:.2f}", episodes=len(self.episodes))
            logger.log(steps, row)
            bar.update(1)
            if ended:
                if steps >= c.train.total_env_steps:
                    break
                state, info = env.reset()
                optimal, trajectory = info["optimal_return"], []
        bar.close()

    def summary(self, counting: CountingClient | None, wall_s: float) -> dict:
        """Headline numbers of the run (also written to summary.json)."""
        steps = int(self.episodes[-1]["end_step"])
        final = [e["regret"] for e in self.episodes if e["end_step"] > steps * (1 - FINAL_FRACTION)]
        stats = counting.stats if counting else LLMStats()
        return {
            "agent": self.config.agent, "env": self.config.env.id, "seed": self.config.train.seed,
            "env_steps": steps, "episodes": len(self.episodes), "wall_s": wall_s,
            "final_regret": sum(final) / len(final),
            "mean_regret": sum(e["regret"] for e in self.episodes) / len(self.episodes),
            "llm_calls": stats.calls, "round_trips": stats.round_trips, "prompt_tokens": stats.prompt_tokens,
            "invalid_rate": stats.invalid / stats.sampled if stats.sampled else None,
        }


def run_icpi_config(path: str, progress: bool = True) -> int:
    """`llmrl run` of a config with `method: icpi`; prints where the outputs are."""
    from cluster.config import load_yaml

    job = IcpiJob(load_yaml(ICPIRunConfig, path), progress=progress)
    run_dir = job.run()
    summary = json.loads((run_dir / "summary.json").read_text())
    print(f"llmrl run: done ({summary['agent']} on {summary['env']}: {summary['env_steps']} env steps, "
          f"{summary['episodes']} episodes, final regret {summary['final_regret']:.3f}). metrics "
          f"{run_dir / 'metrics.csv'}, tensorboard {run_dir / 'tensorboard'}, regret plot {run_dir / 'regret.png'}, "
          f"curves {run_dir / 'curves.png'}, summary {run_dir / 'summary.json'}")
    return 0
