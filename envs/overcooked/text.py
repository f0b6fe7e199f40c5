"""The observation vector and TWOSOME's obs2text (spec section 5): sentences and admissible action strings.

The text is built from the vector alone, as in the original: an item out of view (|dx| > 2 or |dy| > 2 from
the agent) reads (0, 0) and is not mentioned; "held" means at the agent's cell.
"""
from __future__ import annotations

from envs.overcooked.kitchen import (
    BOARD_CELLS, CHOPPED, DELIVERY, FOOD_START, PLATE_START, TASKLIST, Pos, State, Task,
)
from envs.overcooked.macro import in_view

BOWL = "bowl"
ARTICLE = {"tomato": "a tomato", "lettuce": "a lettuce", "onion": "an onion", BOWL: "a bowl"}
ORDINAL = ("first", "second")


def observation_vector(task: Task, state: State) -> tuple[int, ...]:
    """Foods (x, y, chops), plate (x, y), boards (x, y), delivery (x, y), agent (x, y), one-hot of the 7 tasks."""
    def seen(cell: Pos, *extra: int) -> tuple[int, ...]:
        return (*cell, *extra) if in_view(state.agent, cell) else (0,) * (2 + len(extra))

    values: list[int] = []
    for food in state.foods:
        values += seen(state.pos(food), food.chops)
    values += seen(state.plate_pos())
    for cell in (*task.boards, DELIVERY):
        values += seen(cell)
    values += state.agent
    return tuple(values) + tuple(int(i == task.index) for i in range(len(TASKLIST)))


def _items(task: Task, vector: tuple[int, ...]) -> tuple[dict[str, Pos], dict[str, int], Pos]:
    """Positions of the foods and the bowl, chop counts, and the agent, read from the vector."""
    n = len(task.foods)
    pos = {name: (vector[3 * i], vector[3 * i + 1]) for i, name in enumerate(task.foods)}
    chops = {name: vector[3 * i + 2] for i, name in enumerate(task.foods)}
    pos[BOWL] = (vector[3 * n], vector[3 * n + 1])
    agent_at = 3 * n + 2 + 2 * (len(task.boards) + 1)
    return pos, chops, (vector[agent_at], vector[agent_at + 1])


def _listing(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _one(name: str, chops: dict[str, int]) -> str:
    if name == BOWL:
        return "a bowl"
    return f"a chopped {name}" if chops[name] == CHOPPED else f"an unchopped {name}"


def _at(pos: dict[str, Pos], cell: Pos) -> list[str]:
    """Items at cell: foods first (task order), then the bowl."""
    return [name for name, p in pos.items() if p == cell]


def _contents(task: Task, items: list[str]) -> str:
    foods = [name for name in items if name != BOWL]
    return ("a chopped " if len(task.boards) == 1 else "chopped ") + _listing(foods)


def describe(task: Task, vector: tuple[int, ...]) -> list[str]:
    """The observation sentences (without the final 'To serve ...' sentence), each capitalized."""
    pos, chops, agent = _items(task, vector)
    two = len(task.boards) == 2
    sentences = ["there are two fixed cutting boards in the room." if two
                 else "there is a fixed cutting board in the room."]
    starts = {**FOOD_START, BOWL: PLATE_START}
    noticed = [ARTICLE[name] for name in (*task.foods, BOWL) if pos[name] == starts[name]]
    if noticed:
        where = "the table" if len(noticed) == 1 else "the different tables"
        sentences.append(f"you notice {_listing(noticed)} on {where}.")
    for i, board in enumerate(task.boards):
        items = _at(pos, board)
        name = f"the {ORDINAL[i]} cutting board" if two else "the cutting board"
        if len(items) == 1:
            sentences.append(f"{_one(items[0], chops)} is on {name}.")
        elif items:
            sentences.append(f"a bowl containing {_contents(task, items)} is on {name}.")
    sentences.append(_agent_sentence(task, pos, chops, agent))
    return [s.capitalize() for s in sentences]


def _agent_sentence(task: Task, pos: dict[str, Pos], chops: dict[str, int], agent: Pos) -> str:
    held = _at(pos, agent)
    at_board = [i for i, b in enumerate(BOARD_CELLS) if agent == (b[0], 1)]
    if len(held) > 1:
        carried = f"a bowl containing chopped {_listing([n for n in held if n != BOWL])}"
    else:
        carried = _one(held[0], chops) if held else ""
    if at_board:
        board = f"the {ORDINAL[at_board[0]]} cutting board" if len(task.boards) == 2 else "the cutting board"
        front = f"currently you are standing in front of {board}"
        return f"{front} without anything in hand." if not held else f"{front}, carrying {carried} in hand."
    if not held:
        return "currently you don't have anything in hand."
    return f"currently you are carrying {carried}" + ("." if len(held) > 1 else " in hand.")


def goal(task: Task) -> str:
    """'a bowl only containing chopped tomato[ and lettuce]'."""
    return "a bowl only containing chopped " + _listing([f for f in ("tomato", "lettuce") if f in task.name])


def final_sentence(task: Task) -> str:
    return f"To serve the dish of {goal(task)}, you should first"


def actions(task: Task, vector: tuple[int, ...]) -> list[str]:
    """The admissible action strings; position i is macro i of macro_names(task)."""
    pos, chops, agent = _items(task, vector)
    foods, n = task.foods, len(task.foods)
    boards = ["the first cutting board", "the second cutting board"] if len(task.boards) == 2 else ["the cutting board"]
    acts = ([f"pick up the {f}" for f in foods] + ["take the empty bowl" if n > 1 else "take the bowl"]
            + [f"walk to {b}" for b in boards] + ["serve nothing", "chop nothing"])
    held = _at(pos, agent)
    if n > 1 and any(len(_at(pos, cell)) > 1 for cell in (agent, *task.boards)):
        acts[n] = "take the bowl"
    if held:
        acts[-2] = "serve the dish"
    if BOWL in held:
        acts[:n] = [f"put the {f} in the bowl" for f in foods]
        acts[n + 1:n + 1 + len(boards)] = [f"put the bowl on {b}" for b in boards]
    elif len(held) == 1 and chops[held[0]] != CHOPPED:
        acts[n + 1:n + 1 + len(boards)] = [f"put the {held[0]} on {b}" for b in boards]
    for board in task.boards:
        items = _at(pos, board)
        if agent == (board[0], 1) and len(items) == 1 and items[0] != BOWL:
            acts[-1] = f"chop the {items[0]}"
    return acts
