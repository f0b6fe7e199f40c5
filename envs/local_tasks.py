"""GLAM's local BabyAI tasks (go to, pick up, put next, pick up then go to, open a locked door) with
control over which objects a mission may name: the mixed train/test sets and the single-task levels
minigrid lacks. Built from minigrid's BabyAI machinery (RoomGridLevel, verifier instructions)."""
from __future__ import annotations

from dataclasses import dataclass

from minigrid.core.constants import COLOR_NAMES
from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel
from minigrid.envs.babyai.core.verifier import (
    AfterInstr,
    BeforeInstr,
    GoToInstr,
    Instr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
    pos_next_to,
)

Pair = tuple[str, str]
"""An object kind as a mission names it: (colour, type)."""

OBJECT_TYPES = ("key", "ball", "box")
OBJECT_PAIRS: tuple[Pair, ...] = tuple((color, kind) for kind in OBJECT_TYPES for color in COLOR_NAMES)
HELD_OUT: frozenset[Pair] = frozenset(
    {("yellow", "box"), ("red", "key"), ("red", "door"), ("green", "ball"), ("grey", "door")}
)
"""GLAM's held-out colour/type pairs: never named by a training mission, the only ones named at test."""

TASKS = ("goto", "pickup", "putnext", "pickup_then_goto", "open")


@dataclass(frozen=True)
class LocalTaskConfig:
    """Which tasks a level draws from and which objects its missions may name."""

    tasks: tuple[str, ...]
    """Task kinds drawn uniformly per episode, from TASKS."""
    pairs: tuple[Pair, ...] = OBJECT_PAIRS
    """(colour, type) of the objects a mission may name (keys, balls, boxes)."""
    door_colors: tuple[str, ...] = tuple(COLOR_NAMES)
    """Colours the locked door of an 'open' task may have."""
    omit_door_color: bool = False
    """Whether an 'open' mission may say just 'the door' (half the time), as GLAM's training set does."""
    num_dists: int = 8
    """Distractor objects added to the agent's room besides the objects the task needs."""

    def __post_init__(self):
        unknown = sorted(set(self.tasks) - set(TASKS))
        if not self.tasks or unknown:
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {self.tasks}")
        if "open" in self.tasks and not self.door_colors:
            raise ValueError("an 'open' task needs at least one door colour")
        if len(self.pairs) < (2 if {"putnext", "pickup_then_goto"} & set(self.tasks) else 1):
            raise ValueError(f"too few object pairs for tasks {self.tasks}: {self.pairs}")


MIXED_TRAIN = LocalTaskConfig(
    tasks=TASKS,
    pairs=tuple(p for p in OBJECT_PAIRS if p not in HELD_OUT),
    door_colors=tuple(c for c in COLOR_NAMES if (c, "door") not in HELD_OUT),
    omit_door_color=True,
)
MIXED_TEST = LocalTaskConfig(
    tasks=TASKS,
    pairs=tuple(p for p in OBJECT_PAIRS if p in HELD_OUT),
    door_colors=tuple(c for c in COLOR_NAMES if (c, "door") in HELD_OUT),
)
PICKUP_THEN_GOTO = LocalTaskConfig(tasks=("pickup_then_goto",))
OPEN_LOCAL = LocalTaskConfig(tasks=("open",))


class LocalTasks(RoomGridLevel):
    """One task per episode in a single room; an 'open' task adds a second room behind a locked door
    whose key lies in the agent's room (GLAM's layout). max_steps follows BabyAI's rule: room_size**2
    per navigation per room (64 for go to / pick up, 128 for put next, sequences and open)."""

    def __init__(self, config: LocalTaskConfig, room_size: int = 8, **kwargs):
        self.config = config
        self.task = config.tasks[0]
        super().__init__(num_rows=1, num_cols=1, room_size=room_size, **kwargs)

    def _gen_grid(self, width, height):
        self.task = self._rand_elem(self.config.tasks)
        self.num_cols = 2 if self.task == "open" else 1
        self.width = (self.room_size - 1) * self.num_cols + 1
        super()._gen_grid(self.width, height)

    def gen_mission(self):
        if self.task == "open":
            self.instrs = self._open()
            return
        self.place_agent(0, 0)
        if self.task in ("goto", "pickup"):
            pair = self._rand_elem(self.config.pairs)
            self._populate(0, [pair])
            instr = GoToInstr if self.task == "goto" else PickupInstr
            self.instrs = instr(_desc(pair))
            return
        first, second = self._rand_subset(self.config.pairs, 2)
        if self.task == "putnext":
            self._populate(0, [first, second], apart=True)
            self.instrs = PutNextInstr(_desc(first), _desc(second))
        else:
            self._populate(0, [first, second])
            pickup, goto = PickupInstr(_desc(first)), GoToInstr(_desc(second))
            self.instrs = BeforeInstr(pickup, goto) if self._rand_bool() else AfterInstr(goto, pickup)

    def _open(self) -> Instr:
        """Two rooms joined by a locked door; the agent and the door's key in one of them."""
        color = self._rand_elem(self.config.door_colors)
        room = self._rand_int(0, 2)
        self.place_agent(room, 0)
        self.add_door(0, 0, door_idx=0, color=color, locked=True)
        self._populate(room, [(color, "key")])
        named = None if self.config.omit_door_color and self._rand_bool() else color
        return OpenInstr(ObjDesc("door", named))

    def _populate(self, room: int, pairs: list[Pair], apart: bool = False) -> None:
        """Add the named objects, then distractors of other kinds, to room (room, 0) until every object
        is reachable (and, if apart, the first two named objects are not already side by side)."""
        while True:
            named = [self.add_object(room, 0, kind, color)[0] for color, kind in pairs]
            while len(self.get_room(room, 0).objs) < len(pairs) + self.config.num_dists:
                kind, color = self._rand_elem(OBJECT_TYPES), self._rand_color()
                if (color, kind) not in pairs:
                    self.add_object(room, 0, kind, color)
            side_by_side = apart and pos_next_to(named[0].cur_pos, named[1].cur_pos)
            if not side_by_side and self.check_objs_reachable(raise_exc=False):
                return
            self._clear_room(room)

    def _clear_room(self, room: int) -> None:
        objs = self.get_room(room, 0).objs
        for obj in objs:
            self.grid.set(*obj.cur_pos, None)
        objs.clear()


def _desc(pair: Pair) -> ObjDesc:
    color, kind = pair
    return ObjDesc(kind, color)
