"""Exhaustive optimal play: finite-horizon dynamic programming over macro sequences (spec section 7).

Two criteria: "macro_sum", the plain sum of macro rewards (RL-LLM-Prior's return), and "env_return", the
sum over all primitive ticks of 0.99^t r_t (the original env's episode return). Ties go to the lower macro.
The 200-tick cap is ignored, so a value is an upper bound; a plan whose `ticks` stay under the cap attains it.
"""
from __future__ import annotations

from dataclasses import dataclass

from envs.overcooked.env import OvercookedConfig
from envs.overcooked.kitchen import TASKS, State, initial_state
from envs.overcooked.macro import macro_names, run_macro

CRITERIA = ("macro_sum", "env_return")


@dataclass(frozen=True)
class Plan:
    value: float
    macros: tuple[int, ...]
    """Macro ids (= positions in info["actions"])."""
    ticks: int = 0
    """Primitive ticks of the whole plan."""


class Solver:
    """Best plans of at most `horizon` macros for one env configuration (states interned as ints)."""

    def __init__(self, config: OvercookedConfig = OvercookedConfig()):
        self.config = config
        self.task = TASKS[config.task]
        self.macros = macro_names(self.task)
        self._ids: dict[State, int] = {}
        self._states: list[State] = []
        self._edges: list[list[tuple[int, float, int, bool]] | None] = []

    def _id(self, state: State) -> int:
        if state not in self._ids:
            self._ids[state] = len(self._states)
            self._states.append(state)
            self._edges.append(None)
        return self._ids[state]

    def edges(self, i: int) -> list[tuple[int, float, int, bool]]:
        """Per macro of state i: (next state id, macro reward, ticks, delivered)."""
        if self._edges[i] is None:
            out = []
            for macro in self.macros:
                result = run_macro(self.task, self.config.rewards, self._states[i], macro, self.config.subtask_once)
                reward = sum(self.config.tick_gamma ** j * r for j, r in enumerate(result.rewards))
                out.append((self._id(result.state), reward, len(result.rewards), result.delivered))
            self._edges[i] = out
        return self._edges[i]

    def best(self, horizon: int, criterion: str = "macro_sum", state: State | None = None) -> Plan:
        """The best plan of at most `horizon` macros from `state` (default: the start)."""
        if criterion not in CRITERIA:
            raise ValueError(f"unknown criterion {criterion!r}; known: {CRITERIA}")
        gamma = self.config.tick_gamma if criterion == "env_return" else 1.0
        memo: dict[tuple[int, int], tuple[float, int, int]] = {}  # (i, n) -> (value, first macro, ticks)

        def value(i: int, n: int) -> tuple[float, int, int]:
            if (i, n) not in memo:
                best = (float("-inf"), 0, 0)
                for m, (j, reward, ticks, done) in enumerate(self.edges(i)):
                    rest, _, rest_ticks = (0.0, 0, 0) if done or n == 1 else value(j, n - 1)
                    total = reward + gamma ** ticks * rest
                    if total > best[0]:
                        best = (total, m, ticks + rest_ticks)
                memo[i, n] = best
            return memo[i, n]

        i = self._id(state or initial_state(self.task))
        total, _, ticks = value(i, horizon) if horizon > 0 else (0.0, 0, 0)
        macros = []
        for n in range(horizon, 0, -1):
            m = memo[i, n][1]
            macros.append(m)
            i, _, _, done = self.edges(i)[m]
            if done:
                break
        return Plan(total, tuple(macros), ticks)
