"""Text FrozenLake: gymnasium's FrozenLake-v1 (its own dynamics) with a text observation and string actions.

The observation names the agent's cell (row and column counted from 1, row 1 at the top), what lies one
step up, down, left and right (frozen ice, a hole, the goal, the edge of the lake) and where the goal is.
Registered as llmrl/FrozenLake4x4-v0 (horizon 20) and llmrl/FrozenLake8x8-v0 (horizon 100), not slippery.
"""
from __future__ import annotations

import string
from typing import Sequence

import gymnasium
import numpy as np

ACTIONS = ("go left", "go down", "go right", "go up")
"""Action strings in gymnasium's index order (0 left, 1 down, 2 right, 3 up); all always admissible."""
MISSION = "Cross the frozen lake to the goal without falling into a hole."
HORIZONS = {"4x4": 20, "8x8": 100}
"""Default step limit per map (the reference's 20 for 4x4)."""
TILES = {"S": "frozen ice", "F": "frozen ice", "H": "a hole", "G": "the goal"}
SIDES = (("Above you", -1, 0), ("Below you", 1, 0), ("To your left", 0, -1), ("To your right", 0, 1))


def _steps(n: int, direction: str) -> str:
    return f"{n} step{'s' if n != 1 else ''} {direction}"


def describe_position(desc: Sequence[Sequence[str]], row: int, col: int) -> list[str]:
    """Sentences for the agent at (row, col) (0-based) of a FrozenLake map (rows of 'S', 'F', 'H', 'G')."""
    grid = [[c.decode() if isinstance(c, bytes) else str(c) for c in line] for line in desc]
    nrow, ncol = len(grid), len(grid[0])
    sentences = [f"You are at row {row + 1}, column {col + 1} of a {nrow}x{ncol} frozen lake."]
    here = grid[row][col]
    if here == "H":
        sentences.append("You fell into a hole.")
    elif here == "G":
        sentences.append("You reached the goal.")
    for side, dr, dc in SIDES:
        r, c = row + dr, col + dc
        tile = TILES[grid[r][c]] if 0 <= r < nrow and 0 <= c < ncol else "the edge of the lake"
        sentences.append(f"{side} is {tile}.")
    if here != "G":
        (goal_row, goal_col), = [(r, c) for r in range(nrow) for c in range(ncol) if grid[r][c] == "G"]
        parts = []
        if goal_row != row:
            parts.append(_steps(abs(goal_row - row), "down" if goal_row > row else "up"))
        if goal_col != col:
            parts.append(_steps(abs(goal_col - col), "right" if goal_col > col else "left"))
        sentences.append(f"The goal is {' and '.join(parts)}.")
    return sentences


class FrozenLakeText(gymnasium.Wrapper):
    """gymnasium's FrozenLake-v1 speaking text. Observations are the joined descriptions; info carries
    "mission", "descriptions", "actions" (ACTIONS), "state" (gymnasium's integer state) and, at episode
    end, "success" (reached the goal). step takes an index into ACTIONS or one of its strings. Reward 1
    at the goal; terminated in a hole or at the goal; truncated after `horizon` steps (gymnasium's
    TimeLimit). reset(seed=...) seeds gymnasium's env (only matters when slippery)."""

    def __init__(self, map_name: str = "4x4", slippery: bool = False, horizon: int | None = None):
        if map_name not in HORIZONS:
            raise ValueError(f"unknown map {map_name!r}; known: {', '.join(HORIZONS)}")
        self.horizon = horizon or HORIZONS[map_name]
        super().__init__(gymnasium.make("FrozenLake-v1", map_name=map_name, is_slippery=slippery,
                                        max_episode_steps=self.horizon))
        self.action_space = gymnasium.spaces.Discrete(len(ACTIONS))
        self.observation_space = gymnasium.spaces.Text(max_length=1000, charset=string.printable)

    @property
    def actions(self) -> tuple[str, ...]:
        return ACTIONS

    def action_index(self, action: int | str) -> int:
        """gymnasium's action for an index or an action string; ValueError for anything else."""
        if isinstance(action, str) and action in ACTIONS:
            return ACTIONS.index(action)
        if isinstance(action, (int, np.integer)) and not isinstance(action, bool) and 0 <= action < len(ACTIONS):
            return int(action)
        allowed = ", ".join(repr(a) for a in ACTIONS)
        raise ValueError(f"invalid action {action!r}: use an index 0..{len(ACTIONS) - 1} or one of {allowed}")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        state, info = self.env.reset(seed=seed, options=options)
        return self._text(state, info)

    def step(self, action: int | str):
        state, reward, terminated, truncated, info = self.env.step(self.action_index(action))
        obs, info = self._text(state, info)
        if terminated or truncated:
            info["success"] = bool(reward > 0)
        return obs, float(reward), terminated, truncated, info

    def _text(self, state, info: dict) -> tuple[str, dict]:
        lake = self.env.unwrapped
        descriptions = describe_position(lake.desc, int(state) // lake.ncol, int(state) % lake.ncol)
        info = {**info, "mission": MISSION, "descriptions": descriptions, "actions": list(ACTIONS),
                "state": int(state)}
        return " ".join(descriptions), info


FROZENLAKE_IDS = {"llmrl/FrozenLake4x4-v0": "4x4", "llmrl/FrozenLake8x8-v0": "8x8"}


def make_frozenlake_text(**kwargs) -> FrozenLakeText:
    """The registered ids' entry point (a function: gymnasium 1.2 reads a class entry point's `metadata`,
    which a Wrapper only has on instances)."""
    return FrozenLakeText(**kwargs)


def register_frozenlake() -> None:
    """Register the FrozenLake ids with Gymnasium (registered ids are left alone)."""
    for id_, map_name in FROZENLAKE_IDS.items():
        if id_ not in gymnasium.registry:
            gymnasium.register(id=id_, entry_point="envs.frozenlake_text:make_frozenlake_text",
                               kwargs={"map_name": map_name})
