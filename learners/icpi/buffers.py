"""The replay buffer D (every episode) and the success buffer (the most recent successes)."""
from __future__ import annotations

from collections import deque
from typing import Iterator, Sequence

from envs.icpi.base import TimeStep

Trajectory = tuple[TimeStep, ...]


def discounted_return(steps: Sequence[TimeStep], gamma: float) -> float:
    """sum_t gamma^t r_t over the steps, in order."""
    return sum(gamma ** t * ts.reward for t, ts in enumerate(steps))


class EpisodeBuffers:
    """D keeps every episode (unbounded); the success buffer the `success_size` most recent successes.

    With `sil` a success is an episode whose discounted return is above `failure_threshold`;
    without it every episode counts.
    """

    def __init__(self, gamma: float, failure_threshold: float, sil: bool, success_size: int = 8):
        self.gamma = gamma
        self.failure_threshold = failure_threshold
        self.sil = sil
        self.replay: list[Trajectory] = []
        self.successes: deque[Trajectory] = deque(maxlen=success_size)

    def is_success(self, steps: Sequence[TimeStep]) -> bool:
        return not self.sil or discounted_return(steps, self.gamma) > self.failure_threshold

    def add(self, trajectory: Sequence[TimeStep]) -> None:
        """Store a finished episode (its last step has done=False when it was cut by the time limit)."""
        trajectory = tuple(trajectory)
        if not trajectory:
            raise ValueError("cannot store an empty episode; an episode has at least one step")
        self.replay.append(trajectory)
        if self.is_success(trajectory):
            self.successes.append(trajectory)

    def steps(self) -> Iterator[TimeStep]:
        """Every stored step, oldest first."""
        for trajectory in self.replay:
            yield from trajectory
