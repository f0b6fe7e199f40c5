"""Q(s, a) by model rollouts, all rollouts advancing in lockstep (specs/icpi.md, "Cost").

Each depth asks done -> reward -> next state -> next action, each as ONE batched prediction over
all live rollouts. A rollout ends at a predicted done, at the horizon, or when the world model
gives no valid answer; an invalid policy answer becomes a random action. The one-call-at-a-time
order of the reference is the same code run on one rollout at a time (`lockstep=False`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learners.icpi.predictor import Predictor, Request


@dataclass
class Rollout:
    """One model rollout from the real state, starting with `first_action`."""

    first_action: int
    state: str
    action: int
    rng: np.random.Generator
    """Draws the random action that replaces an invalid policy answer."""
    value: float = 0.0
    """Discounted return so far."""
    live: bool = True


def advance(rollouts: list[Rollout], predictor: Predictor, gamma: float, horizon: int, num_actions: int) -> None:
    """Run the rollouts to their ends, one batched prediction per kind per depth."""
    for depth in range(horizon):
        live = [r for r in rollouts if r.live]
        if not live:
            return
        dones = predictor.predict([Request("done", r.state, r.action) for r in live])
        live = _end_failed(live, dones)
        rewards = predictor.predict([Request("reward", r.state, r.action, d) for r, d in live])
        survivors = []
        for (r, done), reward in zip(live, rewards):
            if reward is None:
                r.live = False
                continue
            r.value += gamma ** depth * reward
            if done or depth + 1 == horizon:  # no use predicting a state the rollout never reaches
                r.live = False
            else:
                survivors.append(r)
        states = predictor.predict([Request("state", r.state, r.action) for r in survivors])
        moved = _end_failed(survivors, states)
        for r, state in moved:
            r.state = state
        survivors = [r for r, _ in moved]
        actions = predictor.predict([Request("action", r.state) for r in survivors])
        for r, action in zip(survivors, actions):
            r.action = int(r.rng.integers(num_actions)) if action is None else action


def _end_failed(rollouts: list[Rollout], answers: list) -> list[tuple[Rollout, object]]:
    """(rollout, answer) of the rollouts that got an answer; the others end."""
    kept = []
    for r, answer in zip(rollouts, answers):
        if answer is None:
            r.live = False
        else:
            kept.append((r, answer))
    return kept


def estimate_q(state: str, num_actions: int, predictor: Predictor, gamma: float, horizon: int,
               rollouts_per_action: int = 1, seed: int = 0, lockstep: bool = True) -> np.ndarray:
    """Q(state, a) for every action: the mean discounted return of its rollouts.

    lockstep=True advances every rollout together; False runs them one after another (the
    reference's order). Each rollout's random fallback actions come from its own seeded generator,
    so both orders see the same draws.
    """
    rollouts = [Rollout(first_action=a, state=state, action=a, rng=np.random.default_rng([seed, k]))
                for k, a in enumerate(a for a in range(num_actions) for _ in range(rollouts_per_action))]
    for group in ([rollouts] if lockstep else [[r] for r in rollouts]):
        advance(group, predictor, gamma, horizon, num_actions)
    values = np.zeros(num_actions)
    for r in rollouts:
        values[r.first_action] += r.value / rollouts_per_action
    return values
