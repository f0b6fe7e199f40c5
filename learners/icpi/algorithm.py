"""ICPI on the algorithm contract: one agent (ICPI or a baseline) on one ICPI env, one env step per
iteration, metrics per env step and per episode.

LLM agents ask a scorer from the runtime (a Ray scorer pool, or an in-process backend) through a
counting client; baselines need no LLM and start no Ray. Checkpoints are taken between episodes:
the agent's buffers and RNG, the env's RNG, the episodes so far and the LLM cost counters.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from actors.pool_config import scorer_roles
from envs.icpi.base import IcpiEnv, TimeStep
from learners.algorithm import Plot
from learners.icpi.baselines import LLM_AGENTS, make_agent
from learners.icpi.buffers import discounted_return
from learners.icpi.client import CountingClient, LLMStats, model_token_counter
from learners.icpi.run_config import ICPIRunConfig
from learners.state_io import load_state, save_state

FINAL_FRACTION = 0.25
"""`final_regret` is the mean regret of the episodes that ended in this last fraction of the env steps."""


def make_icpi_env(config: ICPIRunConfig):
    """The Gymnasium env of the run (its `.unwrapped` is the IcpiEnv)."""
    import gymnasium

    import envs  # noqa: F401  (registers the ids)

    env = gymnasium.make(config.env.id, hint=config.env.hint, **config.env.kwargs)
    if not isinstance(env.unwrapped, IcpiEnv):
        raise ValueError(f"env.id {config.env.id!r} is not an ICPI env (an IcpiEnv); use llmrl/icpi-<name>-v0")
    return env


def step_cost(stats: LLMStats) -> dict[str, float]:
    """The metrics of what one env step cost the LLM."""
    row = {"llm_calls": stats.calls, "round_trips": stats.round_trips, "prompt_tokens": stats.prompt_tokens,
           "sampled_outputs": stats.sampled, "invalid_outputs": stats.invalid}
    if stats.sampled:
        row["invalid_rate"] = stats.invalid / stats.sampled
    return {k: float(v) for k, v in row.items()}


class IcpiAlgorithm:
    """ICPI or a baseline (see the module docstring). `client` / `count_tokens` share an LLM client and
    a token counter across runs (benchmarks); by default an LLM agent gets its scorer from the runtime."""

    config_class = ICPIRunConfig
    plots = (Plot("regret.png", "step", ("regret",)),
             Plot("curves.png", "step", ("regret", "llm_calls", "round_trips", "prompt_tokens")))

    def __init__(self, config: ICPIRunConfig, runtime, client=None, count_tokens=None):
        self.config = config
        self.owned_client = None
        self.counting = None
        if config.agent in LLM_AGENTS:
            if client is None:
                client = self.owned_client = runtime.scorer(config.backend, config.pool)
            count_tokens = count_tokens or model_token_counter(config.backend.model)
            self.counting = CountingClient(client, count_tokens)
        self.env = make_icpi_env(config)
        self.agent = make_agent(config.agent, self.env.unwrapped, config.icpi, config.train.seed, self.counting,
                                count_tokens)
        self.iteration = 0
        self.episodes: list[dict[str, float]] = []
        self.wall_s = 0.0
        self.state: str | None = None
        """The current observation; None between episodes (the next step resets the env)."""
        self.optimal = 0.0
        self.trajectory: list[TimeStep] = []

    @staticmethod
    def resource_roles(config: ICPIRunConfig) -> list[tuple[str, dict[str, float]]]:
        """(role, placement bundle) of every actor a run starts: the scorer workers of an LLM agent."""
        return scorer_roles(config.pool, config.backend) if config.agent in LLM_AGENTS else []

    @property
    def env_steps(self) -> int:
        return self.iteration

    @property
    def stats(self) -> LLMStats:
        return self.counting.stats if self.counting else LLMStats()

    # ---- the contract ----------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One env step: act, observe; at an episode's end, its return and regret."""
        start = time.perf_counter()
        if self.state is None:
            self.state, info = self.env.reset(seed=self.config.train.seed if self.iteration == 0 else None)
            self.optimal, self.trajectory = info["optimal_return"], []
        before = self.stats.snapshot()
        t = time.perf_counter()
        action = self.agent.act(self.state)
        act_time = time.perf_counter() - t
        next_state, reward, terminated, truncated, _ = self.env.step(action)
        step = TimeStep(self.state, action, float(reward), bool(terminated), next_state)
        self.agent.observe(step)
        self.trajectory.append(step)
        self.iteration += 1
        row = {"env_steps": float(self.iteration), "episode": float(len(self.episodes)),
               "used_model": float(self.agent.used_model),
               "act_time_s": act_time, **step_cost(self.stats - before)}
        self.state = next_state
        if terminated or truncated:
            self.agent.end_episode(self.trajectory)
            ret = discounted_return(self.trajectory, self.env.unwrapped.gamma)
            episode = {"return": ret, "regret": self.optimal - ret, "episode_length": float(len(self.trajectory)),
                       "optimal_return": self.optimal, "end_step": float(self.iteration)}
            self.episodes.append(episode)
            row.update({k: v for k, v in episode.items() if k != "end_step"})
            self.state = None
        self.wall_s += time.perf_counter() - start
        return row

    def finished(self) -> bool:
        """At the first episode end at or after train.total_env_steps."""
        return self.state is None and self.iteration >= self.config.train.total_env_steps

    def checkpointable(self) -> bool:
        return self.state is None

    def save(self, directory: Path) -> None:
        if not self.checkpointable():
            raise RuntimeError("ICPI checkpoints are taken between episodes; step to the end of this one first")
        save_state(directory, "icpi", {
            "iteration": self.iteration, "episodes": self.episodes, "wall_s": self.wall_s,
            "agent": self.agent.state(), "env_rng": self.env.unwrapped.rng.bit_generator.state,
            "llm_stats": dataclasses.asdict(self.stats)})

    def restore(self, directory: Path) -> None:
        state = load_state(directory, "icpi")
        self.iteration, self.episodes, self.wall_s = state["iteration"], state["episodes"], state["wall_s"]
        self.agent.load_state(state["agent"])
        self.env.unwrapped.seed_rng(None).bit_generator.state = state["env_rng"]
        if self.counting is not None:
            self.counting.stats = LLMStats(**state["llm_stats"])
        self.state = None

    def progress(self, row: dict[str, float]) -> dict[str, str]:
        last = f"{self.episodes[-1]['regret']:.2f}" if self.episodes else "-"
        return {"regret": last, "episodes": str(len(self.episodes))}

    def summary(self) -> dict[str, Any]:
        """Headline numbers of the run."""
        steps = int(self.episodes[-1]["end_step"]) if self.episodes else self.iteration
        final = [e["regret"] for e in self.episodes if e["end_step"] > steps * (1 - FINAL_FRACTION)]
        stats = self.stats
        return {
            "agent": self.config.agent, "env": self.config.env.id, "seed": self.config.train.seed,
            "env_steps": steps, "episodes": len(self.episodes), "wall_s": self.wall_s,
            "final_regret": sum(final) / len(final) if final else None,
            "mean_regret": sum(e["regret"] for e in self.episodes) / len(self.episodes) if self.episodes else None,
            "llm_calls": stats.calls, "round_trips": stats.round_trips, "prompt_tokens": stats.prompt_tokens,
            "invalid_rate": stats.invalid / stats.sampled if stats.sampled else None,
        }

    def stop(self) -> None:
        if self.owned_client is not None and hasattr(self.owned_client, "shutdown"):
            self.owned_client.shutdown()
            self.owned_client = None
