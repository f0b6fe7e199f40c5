"""The text Overcooked env (TWOSOME's Overcooked-LLMA on map A, one agent, macro actions) as a gymnasium.Env.

One env step is one macro action. Its reward is the original's macro reward, sum_j tick_gamma^j r_j over the
macro's k primitive ticks (r_j: -0.001 per tick, +0.2 when a food of the dish is fully chopped, +1 correct
delivery, -0.1 wrong delivery). The env has no randomness (the seed is accepted and changes nothing).

Termination: a correct delivery. Truncation: the original's 200-primitive-tick cap (checked after the whole
macro, which always runs to completion); the macro-step caps (31 tomato salad, 51 tomato-lettuce salad, those
of RL-LLM-Prior's loops) are the TimeLimit of the registered ids.

Reward loophole: a wrong delivery resets every delivered food to unchopped at its start, and re-chopping it
pays +0.2 again, so chop -> wrong delivery loops net about +0.08 per 5 macros. The default keeps it
(`subtask_once=False`) because the reference numbers (RL-LLM-Prior's summed returns) were made with it;
`subtask_once=True` closes it by paying each food's subtask reward at most once per episode.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field

import gymnasium
import numpy as np

from envs.overcooked.kitchen import TASKS, Rewards, State, initial_state
from envs.overcooked.macro import macro_names, run_macro
from envs.overcooked.text import actions, describe, final_sentence, goal, observation_vector


@dataclass(frozen=True)
class OvercookedConfig:
    task: str = "tomato salad"
    """The env's task string: "tomato salad" (map v4) or "lettuce-tomato salad" (map v3)."""
    rewards: Rewards = field(default_factory=Rewards)
    tick_gamma: float = 0.99
    """Discount of the ticks inside one macro's reward."""
    max_ticks: int = 200
    """Primitive-tick cap of the original env (truncation)."""
    subtask_once: bool = False
    """Close the chop/wrong-delivery loophole: pay each food's subtask reward once per episode."""

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; known: {', '.join(TASKS)}")
        if not 0.0 < self.tick_gamma <= 1.0 or self.max_ticks < 1:
            raise ValueError(f"need 0 < tick_gamma <= 1 and max_ticks >= 1, got {self.tick_gamma}, {self.max_ticks}")


class OvercookedText(gymnasium.Env):
    """Observation: the TWOSOME prompt text (the sentences + 'To serve the dish of ..., you should first').

    step takes an index into the current info["actions"] or one of those strings. info carries "mission",
    "descriptions" (the sentences without the final one), "actions" (position i = macro i), "success",
    "vector" (the original's int observation), "macro_action_steps" (ticks of the last macro), "ticks"
    (ticks this episode) and "env_return" (sum over all ticks of 0.99^t r_t, the original's episode return).
    reset(options={"state": State}) starts from a given kitchen state.
    """

    metadata = {"render_modes": []}

    def __init__(self, **config):
        self.config = OvercookedConfig(**config)
        self.task = TASKS[self.config.task]
        self.macros = macro_names(self.task)
        self.action_space = gymnasium.spaces.Discrete(len(self.macros))
        self.observation_space = gymnasium.spaces.Text(2000, charset=string.printable)
        self.state: State = initial_state(self.task)
        self._ticks, self._env_return, self._done = 0, 0.0, False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state = (options or {}).get("state") or initial_state(self.task)
        self._ticks, self._env_return, self._done = 0, 0.0, False
        return self._observe(success=False, ticks=0)

    def step(self, action: int | str):
        if self._done:
            raise RuntimeError("the episode is over; call reset()")
        macro = self.macros[self.action_index(action)]
        result = run_macro(self.task, self.config.rewards, self.state, macro, self.config.subtask_once)
        gamma = self.config.tick_gamma
        reward = float(sum(gamma ** j * r for j, r in enumerate(result.rewards)))
        self._env_return += gamma ** self._ticks * reward
        self._ticks += len(result.rewards)
        self.state = result.state
        terminated = result.delivered
        truncated = not terminated and self._ticks >= self.config.max_ticks
        self._done = terminated or truncated
        obs, info = self._observe(success=terminated, ticks=len(result.rewards))
        return obs, reward, terminated, truncated, info

    def action_index(self, action: int | str) -> int:
        """The macro of an index into the current actions, or of one of those strings; ValueError otherwise."""
        allowed = actions(self.task, observation_vector(self.task, self.state))
        if isinstance(action, str) and action in allowed:
            return allowed.index(action)
        if isinstance(action, (int, np.integer)) and not isinstance(action, bool) and 0 <= action < len(allowed):
            return int(action)
        names = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"invalid action {action!r}: use an index 0..{len(allowed) - 1} or one of {names}")

    def _observe(self, success: bool, ticks: int) -> tuple[str, dict]:
        vector = observation_vector(self.task, self.state)
        descriptions = describe(self.task, vector)
        info = {
            "mission": f"serve the dish of {goal(self.task)}",
            "descriptions": descriptions,
            "actions": actions(self.task, vector),
            "success": success,
            "vector": vector,
            "macro_action_steps": ticks,
            "ticks": self._ticks,
            "env_return": self._env_return,
        }
        return " ".join([*descriptions, final_sentence(self.task)]), info
