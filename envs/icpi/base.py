"""The ICPI env role: true dynamics plus the text the LLM reads and writes (specs/icpi.md).

Text conventions (as in the reference): every `*_str` returns one or more complete lines,
each ending with "\\n"; a prompt example is a concatenation of such lines followed by an
empty line ("\\n"). Predictions are sampled up to the prediction type's stop string and
the stop string is appended before validation.
"""
from __future__ import annotations

import abc
import functools
import re
import string
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import gymnasium
import numpy as np

REWARD_PATTERN = re.compile(r"^assert reward == (-?\d+)\n$")
DONE_LINES = {"assert done\n": True, "assert not done\n": False}

Transition = Callable[[Any, int], tuple[Any, float, bool]]
"""Deterministic dynamics: (state, action) -> (next state, reward, terminated)."""


@dataclass(frozen=True)
class TimeStep:
    """One real transition, kept in the replay buffer (`state`/`next_state` are state lines)."""

    state: str
    action: int
    reward: float
    done: bool
    next_state: str


def comparison(left: int, right: int) -> str:
    """The operator that makes `left <op> right` true: "<", ">" or "=="."""
    return "<" if left < right else ">" if left > right else "=="


def best_return(transition: Transition, start: Hashable, steps: int, gamma: float, num_actions: int) -> float:
    """Exact max over action sequences of sum_t gamma^t r_t for at most `steps` steps (memoized search)."""

    @functools.cache
    def value(state: Hashable, steps_left: int) -> float:
        if steps_left == 0:
            return 0.0
        returns = []
        for action in range(num_actions):
            next_state, reward, terminated = transition(state, action)
            returns.append(reward + (0.0 if terminated else gamma * value(next_state, steps_left - 1)))
        return max(returns)

    return value(start, steps)


class IcpiEnv(gymnasium.Env, abc.ABC):
    """A seeded Gymnasium env whose observation is its state line (`state_str` of the state).

    `reset` returns (state line, info) and `step(action_index)` returns
    (state line, reward, terminated, truncated, info); info carries "state" (the raw state)
    and, on reset, "optimal_return" (exact discounted optimal return from the start state).
    """

    name: str
    """Short name: chain, distractor-chain, maze, mini-catch, mini-invaders, point-mass."""
    gamma: float = 0.8
    horizon: int
    """Rollout horizon H of the Q estimate (max model steps per rollout)."""
    time_limit: int
    failure_threshold: float = 0.0
    """Episodes with return above this count as successes (the "sil" success buffer)."""
    reward_values: tuple[float, ...] = (0.0, 1.0)
    """Every reward the env can give: the answer set when rewards are scored, not sampled."""
    reward_pattern: re.Pattern = REWARD_PATTERN
    """What `parse_reward` accepts; group 1 is the reward."""

    def __init__(self, hint: bool = True) -> None:
        self.hint = hint
        self.action_space = gymnasium.spaces.Discrete(len(self.action_strings))
        self.observation_space = gymnasium.spaces.Text(max_length=512, charset=string.printable)

    # --- text -------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def action_strings(self) -> tuple[str, ...]:
        """`action_str(a)` for every action index, in index order."""

    def action_str(self, action: int) -> str:
        return self.action_strings[action]

    @abc.abstractmethod
    def state_str(self, state: Any) -> str:
        """The state line of a raw state, with hints after the first `and` when `self.hint`."""

    @property
    @abc.abstractmethod
    def initial_str(self) -> str:
        """The line that starts every policy-prompt trajectory."""

    def reward_str(self, reward: float) -> str:
        return f"assert reward == {int(reward)}\n"

    def done_str(self, done: bool) -> str:
        return "assert done\n" if done else "assert not done\n"

    def ts_to_string(self, ts: TimeStep) -> str:
        """A transition as written in policy prompts (state, action, reward, done lines)."""
        return ts.state + self.action_str(ts.action) + self.reward_str(ts.reward) + self.done_str(ts.done)

    def stop(self, prediction: str) -> str:
        """Stop string of a prediction type ("done", "reward", "state", "action")."""
        return "\n"

    # --- parsing model output (None = invalid) -----------------------------------------
    def parse_done(self, text: str) -> bool | None:
        return DONE_LINES.get(text)

    def parse_reward(self, text: str) -> float | None:
        match = self.reward_pattern.match(text)
        return float(match.group(1)) if match else None

    def parse_action(self, text: str) -> int | None:
        return self.action_strings.index(text) if text in self.action_strings else None

    @abc.abstractmethod
    def parse_state(self, text: str) -> str | None:
        """`text` if it is a well-formed state line of this env (hints included when on), else None."""

    # --- dynamics ----------------------------------------------------------------------
    @abc.abstractmethod
    def optimal_return(self) -> float:
        """Exact optimal discounted return from the current episode's start state."""

    def seed_rng(self, seed: int | None) -> np.random.Generator:
        """Reseed (when `seed` is given) and return the env's generator."""
        if seed is not None or not hasattr(self, "rng"):
            self.rng = np.random.default_rng(seed)
        return self.rng


class TransitionEnv(IcpiEnv):
    """An IcpiEnv defined by a start-state draw and deterministic dynamics (all six ICPI envs).

    Raw states are hashable. `reset(seed=..., options={"state": s})` starts from `s` instead
    of a drawn start. An episode is truncated when it reaches `time_limit` steps unterminated.
    Regret of an episode = `optimal_return()` - its discounted return sum_t gamma^t r_t
    (0 = optimal). The reference logs the same difference without normalizing, but with its
    optimum in closed form (gamma^shortest path; 1 for mini-catch) and, for mini-invaders,
    undiscounted returns against an optimum of 2 (one per alien).
    """

    policy_writes_done: bool = True
    """Whether policy prompts write each step's done line after its reward line."""
    policy_writes_final_state: bool = False
    """Whether policy prompts write the state a terminated episode ended in after its last step."""

    @abc.abstractmethod
    def draw_start(self, rng: np.random.Generator) -> Hashable:
        """A start state drawn from the env's start distribution."""

    @abc.abstractmethod
    def transition(self, state: Any, action: int) -> tuple[Any, float, bool]:
        """The deterministic dynamics: (next state, reward, terminated)."""

    def perturb(self, state: Any) -> Any:
        """Reward-irrelevant noise applied after each real step (none by default); planning ignores it."""
        return state

    @abc.abstractmethod
    def decode_state(self, text: str) -> Any | None:
        """The in-range raw state that the start of a state line names (hints unchecked), else None."""

    def parse_state(self, text: str) -> str | None:
        state = self.decode_state(text)
        return text if state is not None and self.state_str(state) == text else None

    def ts_to_string(self, ts: TimeStep) -> str:
        done = self.done_str(ts.done) if self.policy_writes_done else ""
        final = ts.next_state if ts.done and self.policy_writes_final_state else ""
        return ts.state + self.action_str(ts.action) + self.reward_str(ts.reward) + done + final

    def optimal_return(self) -> float:
        """Exact optimal discounted return from the start state, by search over the true dynamics."""
        return best_return(self.transition, self.start_state, self.time_limit, self.gamma, len(self.action_strings))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        rng = self.seed_rng(seed)
        start = (options or {}).get("state")
        self.state = self.start_state = self.draw_start(rng) if start is None else start
        self.t = 0
        return self.state_str(self.state), {"state": self.state, "optimal_return": self.optimal_return()}

    def step(self, action: int) -> tuple[str, float, bool, bool, dict]:
        next_state, reward, terminated = self.transition(self.state, int(action))
        self.state = self.perturb(next_state)
        self.t += 1
        truncated = not terminated and self.t >= self.time_limit
        return self.state_str(self.state), float(reward), terminated, truncated, {"state": self.state}
