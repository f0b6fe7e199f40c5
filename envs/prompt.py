"""GLAM's prompt for BabyAI-Text: the action list, the goal, the last observations and the actions between them."""
from __future__ import annotations

from collections import deque
from typing import Sequence


class PromptBuilder:
    """Keeps the last `memory` observations (clause lists) and the `memory - 1` actions taken between
    them, for one episode, and renders GLAM's prompt ending with the open line 'Action N:' (no trailing
    space; candidates are scored with their leading space, e.g. ' turn left')."""

    def __init__(self, actions: Sequence[str], memory: int = 3):
        if memory < 1:
            raise ValueError(f"memory must be at least 1, got {memory}")
        self.actions = tuple(actions)
        self.mission = ""
        self._observations: deque[tuple[str, ...]] = deque(maxlen=memory)
        self._taken: deque[str] = deque(maxlen=memory - 1)

    def reset(self, mission: str, descriptions: Sequence[str]) -> None:
        """Start an episode: forget the last one, keep its mission and first observation."""
        self.mission = mission
        self._observations.clear()
        self._taken.clear()
        self._observations.append(tuple(descriptions))

    def step(self, action: int | str, descriptions: Sequence[str]) -> None:
        """Record the action taken (an index into actions, or its string) and the observation that followed."""
        self._taken.append(action if isinstance(action, str) else self.actions[action])
        self._observations.append(tuple(descriptions))

    def render(self) -> str:
        lines = [f"Possible action of the agent: {', '.join(self.actions)}", f"Goal of the agent: {self.mission}"]
        for k, clauses in enumerate(self._observations):
            lines.append(f"Observation {k}: {', '.join(clauses)}".rstrip())
            lines.append(f"Action {k}: {self._taken[k]}" if k < len(self._taken) else f"Action {k}:")
        return "\n".join(lines)
