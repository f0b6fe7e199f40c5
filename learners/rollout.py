"""What env runners hand to learners: time-major steps of a vector of envs, plus finished episodes."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Episode:
    """A finished episode's summary."""

    ret: float
    length: int
    success: bool


@dataclass
class Rollout:
    """T steps of N envs. Text fields are [T][N] lists; numeric fields are [T, N] tensors.

    next_values[t, n] is V of the observation after step t (after a truncation: of the cut
    episode's final observation; after a termination: 0). versions[t, n] is the policy
    version whose scores chose the action.
    """

    prompts: list[list[str]]
    candidates: list[list[list[str]]]
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_values: torch.Tensor
    versions: torch.Tensor
    episodes: list[Episode] = field(default_factory=list)
    timers: dict[str, float] = field(default_factory=dict)
    runner: int = 0
    """Index of the runner that collected it."""
    start_steps: list[int] = field(default_factory=list)
    """Per env, the id of its first step here (env steps are numbered 0, 1, 2, ... per runner and env): this
    rollout holds steps [start, start + T) of each env. Empty: not tracked (hand-made rollouts)."""

    @property
    def num_steps(self) -> int:
        """Env steps in this rollout (T x N)."""
        return self.actions.numel()

    def flat(self, name: str) -> list:
        """A [T][N] text field flattened to T*N entries, time-major (matches tensor.reshape(-1))."""
        return [x for row in getattr(self, name) for x in row]
