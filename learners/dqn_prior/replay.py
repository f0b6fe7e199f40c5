"""DQN-Prior's replay buffer: transitions with the candidate actions of s' (the proposals at s' sampled
at collection time, or every admissible action for the DQN baseline), kept as plain data."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Transition:
    state: str
    """The state's text as the Q-network reads it."""
    action: str
    reward: float
    next_state: str
    terminated: bool
    """The episode ended in a terminal state (no bootstrap); a time-limit cut is not terminated."""
    next_actions: tuple[str, ...]
    """Candidates at s' for the target's max (empty when terminated)."""


class ReplayBuffer:
    """A ring buffer of transitions, sampled uniformly with replacement."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"replay capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.items: list[Transition] = []
        self.next = 0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, transition: Transition) -> None:
        if len(self.items) < self.capacity:
            self.items.append(transition)
        else:
            self.items[self.next] = transition
        self.next = (self.next + 1) % self.capacity

    def sample(self, size: int, rng: np.random.Generator) -> list[Transition]:
        if not self.items:
            raise ValueError("cannot sample an empty replay buffer; collect transitions first")
        return [self.items[i] for i in rng.integers(len(self.items), size=size)]

    def state(self) -> dict[str, Any]:
        return {"next": self.next, "items": [asdict(t) for t in self.items]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.next = state["next"]
        self.items = [Transition(**{**t, "next_actions": tuple(t["next_actions"])}) for t in state["items"]]


def pair_text(state: str, action: str) -> str:
    """What the Q-network encodes for Q(s, a) with joint features: the reference's "Observation: {s}, Action: {a}."."""
    return f"Observation: {state}, Action: {action}."
