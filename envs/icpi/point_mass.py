"""Point-mass (specs/icpi.md): accelerate a mass on a line into [-2, 2] and stop it there."""
from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from envs.icpi.base import TransitionEnv

THRESHOLD = 2
MAX_DISTANCE = 6
DECEL, ACCEL = range(2)
PATTERN = re.compile(r"assert pos == (-?\d+\.\d\d) and vel == (-?\d+)\.00")


class PointState(NamedTuple):
    pos: float
    """Always a multiple of 0.01 (rounded), so the state line shows it exactly."""
    vel: int


class PointMass(TransitionEnv):
    """pos starts uniform in [-6, -2] u [2, 6] (rounded to 0.01), vel 0. A step adds the old vel
    to pos and changes vel by -1 (decel) or +1 (accel); the step taken from abs(pos) <= 2 with
    vel == 0 (any action) gives reward 1 and ends the episode. Time limit 8.

    Example line: `assert pos == -3.45 and vel == 0.00 and pos < -2 and vel == 0`.
    """

    name = "point-mass"
    horizon = 8
    time_limit = 8
    policy_writes_done = False
    policy_writes_final_state = True
    action_strings = ("pos, vel = decel(pos, vel)\n", "pos, vel = accel(pos, vel)\n")
    initial_str = "pos, vel = reset()\n"

    def state_str(self, state: PointState) -> str:
        pos, vel = state
        line = f"assert pos == {pos:.2f} and vel == {vel:.2f}"
        if self.hint:
            if pos < -THRESHOLD:
                position = f"pos < {-THRESHOLD}"
            elif pos > THRESHOLD:
                position = f"{THRESHOLD} < pos"
            else:
                position = f"{-THRESHOLD} <= pos <= {THRESHOLD}"
            line += f" and {position} and vel {'==' if vel == 0 else '!='} 0"
        return line + "\n"

    def decode_state(self, text: str) -> PointState | None:
        match = PATTERN.match(text)
        # + 0.0 turns -0.0 into 0.0, so the never-written "-0.00" fails the round trip
        return PointState(float(match.group(1)) + 0.0, int(match.group(2))) if match else None

    def draw_start(self, rng: np.random.Generator) -> PointState:
        side = rng.choice((-1, 1))
        return PointState(round(float(side * rng.uniform(THRESHOLD, MAX_DISTANCE)), 2), 0)

    def transition(self, state: PointState, action: int) -> tuple[PointState, float, bool]:
        pos, vel = state
        at_rest_inside = abs(pos) <= THRESHOLD and vel == 0
        next_state = PointState(round(pos + vel, 2), vel + (1 if action == ACCEL else -1))
        return next_state, float(at_rest_inside), at_rest_inside
