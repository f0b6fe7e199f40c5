"""TWOSOME's macro actions on map A: each runs primitive ticks until it is done (spec section 3).

A macro is never refused: an impossible one costs at least one tick (a stay, a walk, or a no-op bump).
"""
from __future__ import annotations

from dataclasses import dataclass

from envs.overcooked.kitchen import (
    CHOPPED, DELIVERY, HAND, PLATE, STAY, Food, Pos, Rewards, State, Task, access, direction, first_move, tick,
)

VIEW_RADIUS = 2


def macro_names(task: Task) -> tuple[str, ...]:
    """The policy's macro ids in order: v4 (one board) has 5, v3 (two boards) 8."""
    gets = tuple(f"get {food}" for food in task.foods)
    knives = tuple(f"go to knife {i + 1}" for i in range(len(task.boards)))
    return gets + ("get plate 1",) + knives + ("deliver", "chop")


def in_view(agent: Pos, cell: Pos) -> bool:
    return abs(agent[0] - cell[0]) <= VIEW_RADIUS and abs(agent[1] - cell[1]) <= VIEW_RADIUS


@dataclass(frozen=True)
class MacroResult:
    state: State
    rewards: tuple[float, ...]
    """One reward per primitive tick."""
    delivered: bool
    """The salad was delivered (the episode terminates)."""


class _Run:
    """Ticks of one macro, recorded."""

    def __init__(self, task: Task, rewards: Rewards, state: State, subtask_once: bool):
        self.task, self.config, self.state, self.once = task, rewards, state, subtask_once
        self.rewards: list[float] = []
        self.delivered = False

    def do(self, action: int) -> None:
        self.state, reward, delivered = tick(self.task, self.config, self.state, action, self.once)
        self.rewards.append(reward)
        self.delivered |= delivered

    def walk(self, cell: Pos) -> None:
        while self.state.agent != cell:
            self.do(first_move(self.state.agent, cell))

    def interact(self, cell: Pos) -> None:
        self.do(direction(self.state.agent, cell))

    def stay_if_idle(self) -> None:
        if not self.rewards:
            self.do(STAY)


def run_macro(task: Task, rewards: Rewards, state: State, macro: str, subtask_once: bool = False) -> MacroResult:
    """Run `macro` (a name of macro_names(task)) from `state` to completion."""
    run = _Run(task, rewards, state, subtask_once)
    if macro.startswith("get ") and macro != "get plate 1":
        _get_food(run, macro[4:])
    elif macro == "get plate 1":
        _get_plate(run)
    elif macro.startswith("go to knife "):
        _go_to(run, task.boards[int(macro[-1]) - 1])
    elif macro == "deliver":
        _go_to(run, DELIVERY)
    elif macro == "chop":
        _chop(run)
    else:
        raise ValueError(f"unknown macro {macro!r}; known: {macro_names(task)}")
    return MacroResult(run.state, tuple(run.rewards), run.delivered)


def _get_food(run: _Run, name: str) -> None:
    food = run.state.food(name)
    if food.where == PLATE:  # in the bowl: walk until the bowl is in view, then stay
        while not in_view(run.state.agent, run.state.plate_pos()):
            run.do(first_move(run.state.agent, access(run.state.plate_pos())))
        run.do(STAY)
        return
    if food.where == HAND:
        run.do(STAY)
        return
    cell = food.where
    run.walk(access(cell))
    if cell in run.task.boards and not food.chopped:
        run.stay_if_idle()
        return
    run.interact(cell)


def _get_plate(run: _Run) -> None:
    if run.state.plate == HAND:
        run.do(STAY)
        return
    cell = run.state.plate
    run.walk(access(cell))
    held = run.state.held()
    if isinstance(held, Food) and not held.chopped:
        run.do(STAY)
        return
    run.interact(cell)  # empty-handed: pick up; a chopped food goes into the bowl (on a board: bowl taken too)
    if run.state.plate != HAND:
        run.interact(cell)


def _go_to(run: _Run, cell: Pos) -> None:
    empty = run.state.held() is None
    run.walk(access(cell))
    if empty:
        run.stay_if_idle()
    else:
        run.interact(cell)


def _chop(run: _Run) -> None:
    agent = run.state.agent
    boards = [b for b in run.task.boards if access(b) == agent]
    food = run.state.food_at(boards[0]) if boards else None
    if food is None or food.chops >= CHOPPED:
        run.do(STAY)
        return
    for _ in range(CHOPPED):
        run.interact(boards[0])
