"""Mini-invaders (specs/icpi.md): a ship shoots two descending aliens before they land."""
from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from envs.icpi.base import TransitionEnv, comparison

WIDTH, HEIGHT, NUM_ALIENS = 4, 5, 2
LEFT, SHOOT, RIGHT = range(3)
DESCEND = "for a in aliens:\n    a.descend()\n"
"""Written after every reward line; its last part, "()\\n", is the reward stop string."""
ALIEN = rf"(None|C\(([0-{WIDTH - 1}]), (-1|[0-{HEIGHT}])\))"
PATTERN = re.compile(rf"assert ship == C\(([0-{WIDTH - 1}]), 0\) and aliens == \[{ALIEN}, {ALIEN}\]")


class Alien(NamedTuple):
    x: int
    y: int

    def __str__(self) -> str:
        return f"C({self.x}, {self.y})"


class InvadersState(NamedTuple):
    ship: int
    aliens: tuple[Alien | None, ...]
    """None for a dead alien."""


class MiniInvaders(TransitionEnv):
    """Width 4; the ship (row 0) and 2 aliens start in 3 distinct uniform columns, the aliens at
    y=5. A step: `shoot` kills each live alien in the ship's column (+1 each); a live alien at
    y=0 has landed; live aliens descend one row; left/right move the ship (clipped). The episode
    ends when an alien lands or both are dead (at most 6 steps). Success: return above 1.

    Example line: `assert ship == C(1, 0) and aliens == [C(3, 2), C(2, 2)] and (ship.x,
    aliens[0].x, aliens[1].x) == (1, 3, 2) and ship.x < aliens[0].x and ship.x < aliens[1].x`.
    """

    name = "mini-invaders"
    horizon = WIDTH * NUM_ALIENS
    time_limit = HEIGHT + 1
    failure_threshold = 1.0
    policy_writes_final_state = True
    reward_pattern = re.compile(r"^assert reward == (-?\d+)\n" + re.escape(DESCEND) + "$")
    action_strings = ("ship.left()\n", "reward = ship.shoot(aliens)\n", "ship.right()\n")
    initial_str = "ship, aliens = reset()\n"

    def reward_str(self, reward: float) -> str:
        return super().reward_str(reward) + DESCEND

    def stop(self, prediction: str) -> str:
        return "()\n" if prediction == "reward" else super().stop(prediction)

    def state_str(self, state: InvadersState) -> str:
        aliens = ", ".join(str(alien) for alien in state.aliens)
        assertions = [f"ship == C({state.ship}, 0)", f"aliens == [{aliens}]"]
        if self.hint:
            live = [(i, alien) for i, alien in enumerate(state.aliens) if alien is not None]
            names = ", ".join(["ship.x"] + [f"aliens[{i}].x" for i, _ in live])
            values = ", ".join(str(x) for x in [state.ship] + [alien.x for _, alien in live])
            assertions.append(f"({names}) == ({values})")
            assertions += [f"ship.x {comparison(state.ship, alien.x)} aliens[{i}].x" for i, alien in live]
        return "assert " + " and ".join(assertions) + "\n"

    def decode_state(self, text: str) -> InvadersState | None:
        match = PATTERN.match(text)
        if not match:
            return None
        ship, first, x0, y0, second, x1, y1 = match.groups()
        aliens = tuple(None if written == "None" else Alien(int(x), int(y))
                       for written, x, y in ((first, x0, y0), (second, x1, y1)))
        return InvadersState(int(ship), aliens)

    def draw_start(self, rng: np.random.Generator) -> InvadersState:
        ship, *alien_xs = (int(x) for x in rng.choice(WIDTH, size=NUM_ALIENS + 1, replace=False))
        return InvadersState(ship, tuple(Alien(x, HEIGHT) for x in alien_xs))

    def transition(self, state: InvadersState, action: int) -> tuple[InvadersState, float, bool]:
        hit = [action == SHOOT and alien is not None and alien.x == state.ship for alien in state.aliens]
        live = [None if dead else alien for alien, dead in zip(state.aliens, hit)]
        landed = any(alien is not None and alien.y == 0 for alien in live)
        aliens = tuple(None if alien is None else Alien(alien.x, alien.y - 1) for alien in live)
        ship = int(np.clip(state.ship + action - 1, 0, WIDTH - 1))
        return InvadersState(ship, aliens), float(sum(hit)), landed or all(alien is None for alien in aliens)
