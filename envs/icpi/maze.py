"""Maze (specs/icpi.md): a 3x3 grid with two inner walls; reach the goal C(i=1, j=0) and step from it."""
from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from envs.icpi.base import TransitionEnv

SIZE = 3


class Cell(NamedTuple):
    i: int
    j: int

    def __str__(self) -> str:
        return f"C(i={self.i}, j={self.j})"


GOAL = Cell(1, 0)
WALLS = frozenset({frozenset({Cell(1, 0), Cell(1, 1)}), frozenset({Cell(1, 1), Cell(2, 1)})})
"""Pairs of neighbouring cells with a wall between them."""
MOVES = (Cell(0, -1), Cell(1, 0), Cell(-1, 0), Cell(0, 1))
"""(di, dj) of left, down, up, right."""
PATTERN = re.compile(rf"assert state == C\(i=([0-{SIZE - 1}]), j=([0-{SIZE - 1}])\)")


class Maze(TransitionEnv):
    """Uniform start over the 9 cells; a move into a wall or the border leaves the agent in place;
    the step taken from the goal (any action) gives reward 1 and ends the episode. Time limit 8.

    Example line: `assert state == C(i=2, j=1) and state != C(i=1, j=0)`.
    """

    name = "maze"
    horizon = 6
    time_limit = 8
    policy_writes_done = False
    action_strings = tuple(f"state, reward = {move}()\n" for move in ("left", "down", "up", "right"))
    initial_str = "state, reward = reset()\n"

    def state_str(self, state: Cell) -> str:
        hint = f" and state {'==' if state == GOAL else '!='} {GOAL}" if self.hint else ""
        return f"assert state == {state}{hint}\n"

    def decode_state(self, text: str) -> Cell | None:
        match = PATTERN.match(text)
        return Cell(*map(int, match.groups())) if match else None

    def draw_start(self, rng: np.random.Generator) -> Cell:
        return Cell(*(int(c) for c in rng.integers(SIZE, size=2)))

    def transition(self, state: Cell, action: int) -> tuple[Cell, float, bool]:
        move = MOVES[action]
        target = Cell(state.i + move.i, state.j + move.j)
        blocked = not (0 <= target.i < SIZE and 0 <= target.j < SIZE) or frozenset({state, target}) in WALLS
        at_goal = state == GOAL
        return (state if blocked else target), float(at_goal), at_goal
