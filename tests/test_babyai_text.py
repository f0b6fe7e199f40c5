"""BabyAI-Text observation clauses on hand-built grids, and truthfulness on a multi-room BabyAI level."""
from __future__ import annotations

import re

import gymnasium
import numpy as np
import pytest
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Ball, Box, Door, Key, Wall
from minigrid.minigrid_env import MiniGridEnv

from envs.describe import describe, offset_text, steps

RIGHT, DOWN, LEFT, UP = range(4)


class HandBuilt(MiniGridEnv):
    """A minigrid env whose grid, agent position and direction are given."""

    def __init__(self, grid: Grid, pos: tuple[int, int], direction: int):
        self._layout = (grid, pos, direction)
        super().__init__(mission_space=MissionSpace(mission_func=lambda: "look"), width=grid.width,
                         height=grid.height, max_steps=10)

    def _gen_grid(self, width, height):
        self.grid, self.agent_pos, self.agent_dir = self._layout
        self.mission = "look"


def room(width: int = 7, height: int = 7) -> Grid:
    grid = Grid(width, height)
    grid.wall_rect(0, 0, width, height)
    return grid


def seen(grid: Grid, pos: tuple[int, int], direction: int, carrying=None) -> list[str]:
    env = HandBuilt(grid, pos, direction)
    env.reset(seed=0)
    env.carrying = carrying
    return describe(env)


def test_step_words():
    assert steps(1, "left") == "1 step left"
    assert steps(2, "forward") == "2 steps forward"
    assert offset_text(-1, 0) == "1 step left"
    assert offset_text(0, 3) == "3 steps forward"
    assert offset_text(2, 1) == "2 steps right and 1 step forward"


def test_walls_forward_and_left_only_within_view():
    # Facing up in a 5x5 interior: the wall 3 ahead, 1 to the left; the right wall is 5 away, out of view.
    assert seen(room(), (1, 3), UP) == ["You see a wall 3 steps forward", "You see a wall 1 step left"]


def test_walls_in_each_direction_follow_the_agent_direction():
    # Facing right: forward is +x, left is -y (up), right is +y (down).
    assert seen(room(), (4, 3), RIGHT) == [
        "You see a wall 2 steps forward", "You see a wall 3 steps left", "You see a wall 3 steps right",
    ]
    # Facing down: forward is +y, left is +x, right is -x.
    assert seen(room(), (4, 4), DOWN) == [
        "You see a wall 2 steps forward", "You see a wall 2 steps left",
    ]
    # Facing left at the left wall.
    assert seen(room(), (1, 1), LEFT) == [
        "You see a wall 1 step forward", "You see a wall 1 step right",
    ]


def test_object_between_agent_and_wall_hides_the_wall():
    grid = room()
    grid.set(3, 3, Ball("red"))
    assert seen(grid, (3, 5), UP) == [
        "You see a wall 3 steps left", "You see a wall 3 steps right", "You see a red ball 2 steps forward",
    ]


def test_objects_with_both_offsets_and_zero_offsets():
    grid = room()
    grid.set(2, 5, Ball("yellow"))   # beside the agent: lateral offset only; hides the left wall
    grid.set(4, 4, Box("grey"))
    grid.set(5, 2, Key("blue"))
    assert seen(grid, (3, 5), UP) == [
        "You see a wall 5 steps forward",
        "You see a wall 3 steps right",
        "You see a yellow ball 1 step left",
        "You see a grey box 1 step right and 1 step forward",
        "You see a blue key 2 steps right and 3 steps forward",
    ]


def test_carrying_comes_first():
    assert seen(room(), (1, 3), UP, carrying=Key("purple")) == [
        "You carry a purple key", "You see a wall 3 steps forward", "You see a wall 1 step left",
    ]


def two_rooms(middle) -> Grid:
    """An 11x7 grid split by a wall at x=5 with `middle` in its centre cell (5, 3); a red ball at (7, 3)
    and a blue box at (8, 1) in the right-hand room."""
    grid = room(11, 7)
    for y in range(1, 6):
        grid.set(5, y, Wall())
    grid.set(5, 3, middle)
    grid.set(7, 3, Ball("red"))
    grid.set(8, 1, Box("blue"))
    return grid


def test_nothing_seen_through_a_wall():
    assert seen(two_rooms(Wall()), (3, 3), RIGHT) == [
        "You see a wall 2 steps forward", "You see a wall 3 steps left", "You see a wall 3 steps right",
    ]


@pytest.mark.parametrize("door, state", [(Door("green"), "closed"), (Door("green", is_locked=True), "locked")])
def test_closed_and_locked_doors_are_seen_but_not_what_lies_behind(door, state):
    assert seen(two_rooms(door), (3, 3), RIGHT) == [
        "You see a wall 3 steps left", "You see a wall 3 steps right", f"You see a {state} green door 2 steps forward",
    ]


def test_through_an_open_door():
    clauses = seen(two_rooms(Door("green", is_open=True)), (3, 3), RIGHT)
    assert clauses[:2] == ["You see a wall 3 steps left", "You see a wall 3 steps right"]
    assert "You see a open green door 2 steps forward" in clauses
    assert "You see a red ball 4 steps forward" in clauses


def test_object_in_the_agents_own_cell_is_not_described():
    grid = room()
    grid.set(3, 3, Door("red", is_open=True))  # the agent may stand in an open doorway
    assert seen(grid, (3, 3), UP) == [
        "You see a wall 3 steps forward", "You see a wall 3 steps left", "You see a wall 3 steps right",
    ]


CLAUSE = re.compile(
    r"You see a (?:(open|closed|locked) )?(\w+) (\w+) ?"
    r"(?:(\d+) steps? (left|right))?(?: and )?(?:(\d+) steps? forward)?$"
)


def located(env, clause: str):
    """The world cell a clause points at: the agent's position + forward * dy + right * dx."""
    state, color, kind, dx, side, dy = CLAUSE.match(clause).groups()
    dx = int(dx or 0) * (1 if side == "right" else -1)
    pos = np.array(env.agent_pos) + int(dy or 0) * env.dir_vec + dx * env.right_vec
    return (color, kind), tuple(int(v) for v in pos)


def test_multi_room_level_tells_only_what_the_agent_can_see():
    """BabyAI-GoTo: 3x3 rooms with closed doors. Walking around (no toggling), every clause names
    the object at the cell it points to, inside the agent's room or (doors) on its walls."""
    env = gymnasium.make("BabyAI-GoTo-v0").unwrapped
    rng = np.random.default_rng(0)
    checked = 0
    for seed in range(4):
        env.reset(seed=seed)
        for _ in range(60):
            room_ = env.room_from_pos(*env.agent_pos)
            (x0, y0), (w, h) = room_.top, room_.size
            for clause in describe(env):
                if clause.startswith("You see a wall"):
                    continue
                (color, kind), (x, y) = located(env, clause)
                cell = env.grid.get(x, y)
                assert cell is not None and (cell.color, cell.type) == (color, kind), clause
                inside = x0 < x < x0 + w - 1 and y0 < y < y0 + h - 1
                on_wall = x0 <= x <= x0 + w - 1 and y0 <= y <= y0 + h - 1
                assert inside or (kind == "door" and on_wall), (clause, room_.top)
                checked += 1
            env.step(int(rng.integers(0, 3)))
    assert checked > 100
