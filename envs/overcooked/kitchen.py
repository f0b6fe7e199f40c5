"""Map A of TWOSOME's Overcooked (7x7, one agent): the layout, the state and the primitive tick.

Cells are (x, y): x the row going down, y the column going right. The 5x5 floor is (1..5, 1..5); every
other cell is a counter, a cutting board or the delivery square. All functions here are pure.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

Pos = tuple[int, int]
HAND = "hand"
"""Where of a held food or plate."""
PLATE = "plate"
"""Where of a food in the plate (bowl)."""

RIGHT, DOWN, LEFT, UP, STAY = range(5)
MOVES: dict[int, Pos] = {RIGHT: (0, 1), DOWN: (1, 0), LEFT: (0, -1), UP: (-1, 0)}

SIZE = 7
AGENT_START: Pos = (1, 4)
PLATE_START: Pos = (6, 5)
DELIVERY: Pos = (3, 0)
BOARD_CELLS: tuple[Pos, Pos] = ((1, 0), (2, 0))
FOOD_START: dict[str, Pos] = {"tomato": (0, 5), "lettuce": (1, 6), "onion": (2, 6)}
DELIVERY_ORDER = ("lettuce", "onion", "tomato")
"""Order of the foods in a delivered dish's name ("lettuce-tomato salad")."""
CHOPPED = 3
TASKLIST = ("tomato salad", "lettuce salad", "onion salad", "lettuce-tomato salad", "onion-tomato salad",
            "lettuce-onion salad", "lettuce-onion-tomato salad")


@dataclass(frozen=True)
class Task:
    """A salad task on map A: `name` is the env's task string; `foods` the foods in the kitchen (vector
    order) and `boards` its cutting boards (v4 has one, v3 two)."""

    name: str
    foods: tuple[str, ...]
    boards: tuple[Pos, ...]

    @property
    def index(self) -> int:
        return TASKLIST.index(self.name)


TOMATO_SALAD = Task("tomato salad", ("tomato",), BOARD_CELLS[:1])
"""Task 0 on Overcooked-LLMA-v4."""
TOMATO_LETTUCE_SALAD = Task("lettuce-tomato salad", ("tomato", "lettuce", "onion"), BOARD_CELLS)
"""Task 3 on Overcooked-LLMA-v3."""
TASKS = {task.name: task for task in (TOMATO_SALAD, TOMATO_LETTUCE_SALAD)}


@dataclass(frozen=True)
class Rewards:
    """The env's rewardList (signed): TWOSOME / RL-LLM-Prior use 0.2, 1, -0.1, -0.001."""

    subtask: float = 0.2
    correct: float = 1.0
    wrong: float = -0.1
    step: float = -0.001


@dataclass(frozen=True)
class Food:
    name: str
    where: Pos | str
    """A counter or board cell, HAND or PLATE."""
    chops: int = 0

    @property
    def chopped(self) -> bool:
        return self.chops >= CHOPPED


@dataclass(frozen=True)
class State:
    agent: Pos
    foods: tuple[Food, ...]
    """In the task's food order."""
    plate: Pos | str
    """A cell or HAND."""
    paid: frozenset[str] = field(default=frozenset())
    """Foods whose subtask reward was paid (tracked only when that reward is paid once per episode)."""

    def food(self, name: str) -> Food:
        return next(f for f in self.foods if f.name == name)

    def held(self) -> Food | str | None:
        """PLATE, the held Food, or None."""
        if self.plate == HAND:
            return PLATE
        return next((f for f in self.foods if f.where == HAND), None)

    def plate_pos(self) -> Pos:
        return self.agent if self.plate == HAND else self.plate

    def pos(self, food: Food) -> Pos:
        return {HAND: self.agent, PLATE: self.plate_pos()}.get(food.where, food.where)

    def in_plate(self) -> tuple[Food, ...]:
        return tuple(f for f in self.foods if f.where == PLATE)

    def food_at(self, cell: Pos) -> Food | None:
        return next((f for f in self.foods if f.where == cell), None)

    def with_food(self, food: Food) -> State:
        return replace(self, foods=tuple(food if f.name == food.name else f for f in self.foods))


def initial_state(task: Task) -> State:
    return State(AGENT_START, tuple(Food(name, FOOD_START[name]) for name in task.foods), PLATE_START)


def is_floor(cell: Pos) -> bool:
    return 1 <= cell[0] <= SIZE - 2 and 1 <= cell[1] <= SIZE - 2


def add(a: Pos, b: Pos) -> Pos:
    return a[0] + b[0], a[1] + b[1]


@lru_cache(maxsize=None)
def access(cell: Pos) -> Pos:
    """The only floor cell next to a fixed spot of map A."""
    (floor,) = [add(cell, d) for d in MOVES.values() if is_floor(add(cell, d))]
    return floor


def direction(src: Pos, dst: Pos) -> int:
    """The move from src to the neighbouring cell dst."""
    return next(a for a, d in MOVES.items() if add(src, d) == dst)


@lru_cache(maxsize=None)
def _distances(target: Pos) -> dict[Pos, int]:
    dist, frontier = {target: 0}, [target]
    while frontier:
        cell = frontier.pop(0)
        for d in MOVES.values():
            nxt = add(cell, d)
            if is_floor(nxt) and nxt not in dist:
                dist[nxt] = dist[cell] + 1
                frontier.append(nxt)
    return dist


def first_move(src: Pos, dst: Pos) -> int:
    """The first move of a shortest floor path (ties: right, down, left, up)."""
    dist = _distances(dst)
    return next(a for a, d in MOVES.items() if dist.get(add(src, d), 1 << 30) == dist[src] - 1)


def distance(src: Pos, dst: Pos) -> int:
    return _distances(dst)[src]


def tick(task: Task, rewards: Rewards, state: State, action: int, subtask_once: bool = False
         ) -> tuple[State, float, bool]:
    """One primitive step: (next state, reward, correct delivery). Moving into a non-floor cell interacts."""
    if action == STAY:
        return state, rewards.step, False
    target = add(state.agent, MOVES[action])
    if is_floor(target):
        return replace(state, agent=target), rewards.step, False
    state, bonus, delivered = _interact(task, rewards, state, target, subtask_once)
    return state, rewards.step + bonus, delivered


def _interact(task: Task, rewards: Rewards, s: State, cell: Pos, once: bool) -> tuple[State, float, bool]:
    held, food = s.held(), s.food_at(cell)
    plate_here, board = s.plate == cell, cell in task.boards
    if cell == DELIVERY:
        return (s, 0.0, False) if held is None else _deliver(task, rewards, s, held)
    if held is None:
        if plate_here:
            return replace(s, plate=HAND), 0.0, False
        if food is not None and board and not food.chopped:
            return _chop(task, rewards, s, food, once)
        if food is not None:
            return s.with_food(replace(food, where=HAND)), 0.0, False
        return s, 0.0, False
    if not plate_here and food is None:  # an empty board or plain counter: put down
        if held == PLATE:
            return replace(s, plate=cell), 0.0, False
        return s.with_food(replace(held, where=cell)), 0.0, False
    if held == PLATE and food is not None and food.chopped:
        return s.with_food(replace(food, where=PLATE)), 0.0, False
    if plate_here and isinstance(held, Food) and held.chopped:
        s = s.with_food(replace(held, where=PLATE))
        return (replace(s, plate=HAND) if board else s), 0.0, False
    return s, 0.0, False


def _chop(task: Task, rewards: Rewards, s: State, food: Food, once: bool) -> tuple[State, float, bool]:
    food = replace(food, chops=food.chops + 1)
    s = s.with_food(food)
    if not food.chopped or food.name not in task.name or food.name in s.paid:
        return s, 0.0, False
    return (replace(s, paid=s.paid | {food.name}) if once else s), rewards.subtask, False


def dish_name(foods: tuple[Food, ...]) -> str:
    names = {f.name for f in foods}
    return "-".join(n for n in DELIVERY_ORDER if n in names) + " salad"


def _deliver(task: Task, rewards: Rewards, s: State, held: Food | str) -> tuple[State, float, bool]:
    if held == PLATE and s.in_plate() and dish_name(s.in_plate()) == task.name:
        return replace(s, plate=DELIVERY), rewards.correct, True
    delivered = s.in_plate() if held == PLATE else (held,)
    for f in delivered:
        s = s.with_food(Food(f.name, FOOD_START[f.name]))
    return (replace(s, plate=PLATE_START) if held == PLATE else s), rewards.wrong, False
