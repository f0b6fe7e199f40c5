"""Chain and distractor-chain (specs/icpi.md): walk a line of 8 states to the goal and try it."""
from __future__ import annotations

import re

import numpy as np

from envs.icpi.base import TransitionEnv

NUM_STATES = 8
GOAL = 4
LEFT, TRY_GOAL, RIGHT = range(3)

ChainState = tuple[int, ...]
"""(position,) for chain, (position, distractor) for distractor-chain."""


class Chain(TransitionEnv):
    """States 0..7, goal 4, uniform start; left/right move -1/+1 (clipped); try_goal ends the
    episode with reward 1 at the goal (else 0). With `distractor`, a second coordinate is redrawn
    uniformly in 0..7 after every step; it never affects rewards. Time limit 8.

    Example line: `assert state == [6, 3] and state != [4, 3]` (distractor-chain, hint on).
    """

    horizon = 6
    time_limit = 8
    policy_writes_done = False
    action_strings = ("state = left()\n", "reward = try_goal(state)\n", "state = right()\n")
    initial_str = "state, reward = reset()\n"

    def __init__(self, hint: bool = True, distractor: bool = False) -> None:
        super().__init__(hint)
        self.distractor = distractor
        self.name = "distractor-chain" if distractor else "chain"
        self.size = 2 if distractor else 1
        coordinate = f"([0-{NUM_STATES - 1}])"
        self.pattern = re.compile(r"assert state == \[" + ", ".join([coordinate] * self.size) + r"\]")

    def state_str(self, state: ChainState) -> str:
        goal = [GOAL, *state[1:]]
        hint = f" and state {'==' if list(state) == goal else '!='} {goal}" if self.hint else ""
        return f"assert state == {list(state)}{hint}\n"

    def decode_state(self, text: str) -> ChainState | None:
        match = self.pattern.match(text)
        return tuple(int(c) for c in match.groups()) if match else None

    def draw_start(self, rng: np.random.Generator) -> ChainState:
        return tuple(int(c) for c in rng.integers(NUM_STATES, size=self.size))

    def transition(self, state: ChainState, action: int) -> tuple[ChainState, float, bool]:
        position, *rest = state
        if action == TRY_GOAL:
            return state, float(position == GOAL), True
        return (int(np.clip(position + action - 1, 0, NUM_STATES - 1)), *rest), 0.0, False

    def perturb(self, state: ChainState) -> ChainState:
        return (state[0], *(int(c) for c in self.rng.integers(NUM_STATES, size=self.size - 1)))
