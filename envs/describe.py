"""GLAM's observation clauses for what a minigrid agent sees in its egocentric view.

Offsets are counted in the egocentric view, where the agent stands at the bottom-centre cell
facing up: dx = columns to the right (negative: left), dy = rows ahead. Only cells minigrid's
visibility mask marks as seen are described, so nothing behind walls or closed doors appears."""
from __future__ import annotations

import numpy as np
from minigrid.core.grid import Grid
from minigrid.core.world_object import WorldObj
from minigrid.minigrid_env import MiniGridEnv


def steps(n: int, direction: str) -> str:
    """'1 step left', '3 steps forward'."""
    return f"{n} step{'' if n == 1 else 's'} {direction}"


def offset_text(dx: int, dy: int) -> str:
    """'2 steps left and 1 step forward'; a zero offset drops its part."""
    parts = []
    if dx:
        parts.append(steps(abs(dx), "right" if dx > 0 else "left"))
    if dy:
        parts.append(steps(dy, "forward"))
    return " and ".join(parts)


def object_name(obj: WorldObj) -> str:
    """'red ball', 'locked blue door'."""
    if obj.type == "door":
        state = "open" if obj.is_open else "locked" if obj.is_locked else "closed"
        return f"{state} {obj.color} door"
    return f"{obj.color} {obj.type}"


def _wall_clause(view: Grid, vis_mask: np.ndarray, line: list[tuple[int, int]], direction: str) -> str | None:
    """The wall on a straight line from the agent, if the first seen non-empty cell on it is a wall."""
    for n, (i, j) in enumerate(line, start=1):
        if not vis_mask[i, j]:
            return None
        cell = view.get(i, j)
        if cell is not None:
            return f"You see a wall {steps(n, direction)}" if cell.type == "wall" else None
    return None


def describe_view(view: Grid, vis_mask: np.ndarray, carrying: WorldObj | None) -> list[str]:
    """Clauses for an egocentric view (agent at the bottom centre, facing up) and its visibility mask:
    what the agent carries, the nearest wall forward/left/right, then every seen object and door
    (columns left to right, each far to near). The agent's own cell is not described."""
    ax, ay = view.width // 2, view.height - 1
    clauses = [f"You carry a {carrying.color} {carrying.type}"] if carrying is not None else []
    lines = {
        "forward": [(ax, j) for j in range(ay - 1, -1, -1)],
        "left": [(i, ay) for i in range(ax - 1, -1, -1)],
        "right": [(i, ay) for i in range(ax + 1, view.width)],
    }
    for direction, line in lines.items():
        clause = _wall_clause(view, vis_mask, line, direction)
        if clause:
            clauses.append(clause)
    for i in range(view.width):
        for j in range(view.height):
            cell = view.get(i, j)
            if (i, j) == (ax, ay) or not vis_mask[i, j] or cell is None or cell.type == "wall":
                continue
            clauses.append(f"You see a {object_name(cell)} {offset_text(i - ax, ay - j)}")
    return clauses


def describe(env: MiniGridEnv) -> list[str]:
    """Clauses for what the agent of a minigrid env sees now (minigrid's own view and visibility mask)."""
    view, vis_mask = env.gen_obs_grid()
    return describe_view(view, vis_mask, env.carrying)
