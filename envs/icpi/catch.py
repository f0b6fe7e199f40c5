"""Mini-catch (specs/icpi.md): bsuite Catch with 5 rows and 4 columns, written as code."""
from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from envs.icpi.base import TransitionEnv, comparison

ROWS, COLUMNS = 5, 4
ACTION_STOP = "\nball.descend()\n"
X_DIGIT, Y_DIGIT = f"([0-{COLUMNS - 1}])", f"([0-{ROWS - 1}])"
PATTERN = re.compile(rf"assert paddle == C\({X_DIGIT}, 0\) and ball == C\({X_DIGIT}, {Y_DIGIT}\)")


class CatchState(NamedTuple):
    paddle_x: int
    ball_x: int
    ball_y: int


class MiniCatch(TransitionEnv):
    """The paddle starts at x=2 (row 0), the ball at a uniform x in row 4. While the ball is above
    the paddle's row, a step moves the paddle left/stay/right (clipped) and the ball down one row;
    the next step (the 5th) ends the episode with reward 1 if paddle.x == ball.x (else 0) and
    changes nothing. Gamma 1. Each action line is followed by `ball.descend()`, its stop string.

    Example line: `assert paddle == C(2, 0) and ball == C(0, 4) and paddle.x == 2 and ball.x == 0
    and paddle.x > ball.x and ball.y == 4` (one line).
    """

    name = "mini-catch"
    gamma = 1.0
    horizon = 5
    time_limit = ROWS
    policy_writes_final_state = True
    action_strings = tuple(f"reward = paddle.{move}(){ACTION_STOP}" for move in ("left", "stay", "right"))
    initial_str = "paddle, ball = reset()\n"

    def state_str(self, state: CatchState) -> str:
        paddle, ball_x, ball_y = state
        line = f"assert paddle == C({paddle}, 0) and ball == C({ball_x}, {ball_y})"
        if self.hint:
            line += (f" and paddle.x == {paddle} and ball.x == {ball_x}"
                     f" and paddle.x {comparison(paddle, ball_x)} ball.x and ball.y == {ball_y}")
        return line + "\n"

    def stop(self, prediction: str) -> str:
        return ACTION_STOP if prediction == "action" else super().stop(prediction)

    def decode_state(self, text: str) -> CatchState | None:
        match = PATTERN.match(text)
        return CatchState(*map(int, match.groups())) if match else None

    def draw_start(self, rng: np.random.Generator) -> CatchState:
        return CatchState(COLUMNS // 2, int(rng.integers(COLUMNS)), ROWS - 1)

    def transition(self, state: CatchState, action: int) -> tuple[CatchState, float, bool]:
        if state.ball_y == 0:
            return state, float(state.paddle_x == state.ball_x), True
        paddle = int(np.clip(state.paddle_x + action - 1, 0, COLUMNS - 1))
        return CatchState(paddle, state.ball_x, state.ball_y - 1), 0.0, False
