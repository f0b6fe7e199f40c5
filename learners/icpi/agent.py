"""The ICPI agent: explore at random until the model is ready and trusted, then act greedily on
Q estimated by model rollouts (or, without argmax, from the policy prompt alone)."""
from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from envs.icpi.base import IcpiEnv, TimeStep
from learners.icpi.buffers import EpisodeBuffers
from learners.icpi.config import ICPIConfig
from learners.icpi.exploration import argmax_random_tie, is_ready, use_model_probability
from learners.icpi.lockstep import estimate_q
from learners.icpi.predictor import Predictor, Request


class Agent(Protocol):
    """What the ICPI job drives: ICPI and every baseline."""

    used_model: bool
    """Whether the last action came from the learned model (not the exploration coin)."""

    def act(self, state: str) -> int: ...

    def observe(self, step: TimeStep) -> None:
        """A real transition, right after it happened."""

    def end_episode(self, trajectory: Sequence[TimeStep]) -> None:
        """A finished episode (a time-limit cut leaves its last step's done False)."""

    def state(self) -> dict[str, Any]:
        """What the agent has learned and its RNG, as plain data (for checkpoints)."""

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from `state()`."""


def trajectories_state(trajectories: Sequence[Sequence[TimeStep]]) -> list[list[list]]:
    """Episodes as plain data: each step [state, action, reward, done, next_state]."""
    return [[[ts.state, ts.action, ts.reward, ts.done, ts.next_state] for ts in trajectory]
            for trajectory in trajectories]


def trajectories_from(state: Sequence[Sequence[Sequence]]) -> list[list[TimeStep]]:
    """The episodes `trajectories_state` wrote."""
    return [[TimeStep(*step) for step in trajectory] for trajectory in state]


def model_ready(buffers: EpisodeBuffers, num_actions: int) -> bool:
    """Whether the buffers fill every prompt the rollouts need (see `is_ready`)."""
    steps = list(buffers.steps())
    return is_ready({ts.action for ts in steps}, num_actions, any(not ts.done for ts in steps),
                    len(buffers.successes) > 0)


class ICPIAgent:
    """In-context policy iteration with any predictor (the LLM, or the matching-model baseline)."""

    def __init__(self, env: IcpiEnv, predictor: Predictor, buffers: EpisodeBuffers, config: ICPIConfig, seed: int):
        self.env = env
        self.predictor = predictor
        self.buffers = buffers
        self.config = config
        self.num_actions = len(env.action_strings)
        self.horizon = config.horizon or env.horizon
        self.rng = np.random.default_rng(seed)
        self.used_model = False
        self.last_q: np.ndarray | None = None

    @property
    def model_probability(self) -> float:
        return use_model_probability(len(self.buffers.successes), self.config.min_successes)

    def ready(self) -> bool:
        return model_ready(self.buffers, self.num_actions)

    def act(self, state: str) -> int:
        self.used_model = bool(self.rng.random() < self.model_probability) and self.ready()
        self.last_q = None
        if not self.used_model:
            return int(self.rng.integers(self.num_actions))
        step_seed = int(self.rng.integers(2 ** 31))
        self.predictor.begin_step(step_seed)
        if self.config.argmax:
            self.last_q = estimate_q(state, self.num_actions, self.predictor, self.env.gamma, self.horizon,
                                     self.config.rollouts_per_action, seed=step_seed, lockstep=self.config.lockstep)
            return argmax_random_tie(self.last_q, self.rng)
        [action] = self.predictor.predict([Request("action", state)])
        return int(self.rng.integers(self.num_actions)) if action is None else action

    def observe(self, step: TimeStep) -> None:
        pass

    def end_episode(self, trajectory: Sequence[TimeStep]) -> None:
        self.buffers.add(trajectory)

    def state(self) -> dict[str, Any]:
        """The replay buffer (the success buffer follows from it) and the RNG."""
        return {"rng": self.rng.bit_generator.state, "replay": trajectories_state(self.buffers.replay)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.buffers.replay.clear()
        self.buffers.successes.clear()
        for trajectory in trajectories_from(state["replay"]):
            self.buffers.add(trajectory)
