"""Baselines in the ICPI framework: tabular Q, random, and the factory of every agent kind.

The matching model and no-argmax are ICPIAgent variants (a buffer-lookup predictor; the policy
prompt alone), built by `make_agent`.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any, Callable, Literal, Sequence

import numpy as np

from envs.icpi.base import IcpiEnv, TimeStep
from learners.icpi.agent import Agent, ICPIAgent
from learners.icpi.buffers import EpisodeBuffers, discounted_return
from learners.icpi.client import CountingClient
from learners.icpi.config import ICPIConfig
from learners.icpi.exploration import argmax_random_tie, use_model_probability
from learners.icpi.predictor import LLMPredictor, MatchingPredictor

AgentKind = Literal["icpi", "tabular_q", "matching", "no_argmax", "random"]
LLM_AGENTS = ("icpi", "no_argmax")


class TabularQAgent:
    """One-step Q-learning over state lines (lr 1, Q init 1), exploring on ICPI's schedule.

    Terminal steps do not bootstrap (the reference bootstrapped them, a bug); time-limit cuts do.
    """

    def __init__(self, env: IcpiEnv, seed: int, min_successes: int = 3, lr: float = 1.0, q_init: float = 1.0):
        self.num_actions = len(env.action_strings)
        self.gamma = env.gamma
        self.lr = lr
        self.q: defaultdict[str, np.ndarray] = defaultdict(lambda: np.full(self.num_actions, q_init))
        self.failure_threshold = env.failure_threshold
        self.num_successes = 0
        self.min_successes = min_successes
        self.rng = np.random.default_rng(seed)
        self.used_model = False

    def act(self, state: str) -> int:
        p = use_model_probability(self.num_successes, self.min_successes)
        self.used_model = bool(self.rng.random() < p)
        if self.used_model:
            return argmax_random_tie(self.q[state], self.rng)
        return int(self.rng.integers(self.num_actions))

    def observe(self, step: TimeStep) -> None:
        target = step.reward if step.done else step.reward + self.gamma * self.q[step.next_state].max()
        q = self.q[step.state]
        q[step.action] += self.lr * (target - q[step.action])

    def end_episode(self, trajectory: Sequence[TimeStep]) -> None:
        self.num_successes += discounted_return(trajectory, self.gamma) > self.failure_threshold

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "num_successes": int(self.num_successes),
                "q": {s: q.tolist() for s, q in self.q.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.num_successes = state["num_successes"]
        self.q.clear()
        self.q.update({s: np.array(q, dtype=float) for s, q in state["q"].items()})


class RandomAgent:
    """Uniformly random actions."""

    def __init__(self, env: IcpiEnv, seed: int):
        self.num_actions = len(env.action_strings)
        self.rng = np.random.default_rng(seed)
        self.used_model = False

    def act(self, state: str) -> int:
        return int(self.rng.integers(self.num_actions))

    def observe(self, step: TimeStep) -> None:
        pass

    def end_episode(self, trajectory: Sequence[TimeStep]) -> None:
        pass

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


def make_agent(kind: AgentKind, env: IcpiEnv, config: ICPIConfig, seed: int, client: CountingClient | None = None,
               count_tokens: Callable[[str], int] | None = None) -> Agent:
    """An agent of `kind`; the LLM kinds (icpi, no_argmax) need the client and the token counter."""
    if kind == "random":
        return RandomAgent(env, seed)
    if kind == "tabular_q":
        return TabularQAgent(env, seed, config.min_successes)
    buffers = EpisodeBuffers(env.gamma, env.failure_threshold, config.sil, config.success_buffer_size)
    if kind == "matching":
        return ICPIAgent(env, MatchingPredictor(buffers), buffers, config, seed)
    if kind not in LLM_AGENTS:
        raise ValueError(f"agent {kind!r} is unknown; choose one of icpi, tabular_q, matching, no_argmax, random")
    if client is None or count_tokens is None:
        raise ValueError(f"agent {kind!r} asks an LLM: pass client= (a CountingClient) and count_tokens=")
    if kind == "no_argmax":
        config = dataclasses.replace(config, argmax=False)
    return ICPIAgent(env, LLMPredictor(env, buffers, client, config, count_tokens), buffers, config, seed)
