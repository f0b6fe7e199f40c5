"""The learner role, hosted where it runs: a Ray actor on its own placement-group bundle (or this
process). The learner is built there from a factory, so the driver never holds the model; the driver
sends rollouts and gets metrics, and asks the learner to publish its weights, save and restore."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import torch
from ray.exceptions import RayActorError

from actors.weight_sync import WeightSync

ACTOR_LOST = RayActorError
"""What a call on a Ray actor that died (killed, its node lost) raises (ActorDiedError, ActorUnavailableError)."""


class LearnerLost(RuntimeError):
    """The learner actor died mid-run. The experiment restarts the run from its latest checkpoint
    (train.max_restarts times at most) or stops with this error."""


class Learner(Protocol):
    """What every method's learner offers (PPO today; KL-prior PPO and DQN-prior learners next)."""

    @property
    def version(self) -> int: ...

    def update(self, rollouts: Sequence[Any]) -> dict[str, float]: ...

    def get_weights(self) -> Mapping[str, torch.Tensor]: ...

    def save(self, directory: Path) -> None: ...

    def restore(self, directory: Path) -> None: ...


class LearnerHost:
    """Builds a learner with `build()` and serves it (see the module docstring)."""

    def __init__(self, build: Callable[[], Learner]):
        self.learner = build()

    def update(self, rollouts: Sequence[Any]) -> dict[str, float]:
        return self.learner.update(rollouts)

    def publish(self, sync: WeightSync) -> int:
        """The learner's current weights to the scorers; returns their version."""
        sync.publish(self.learner)
        return self.learner.version

    def version(self) -> int:
        return self.learner.version

    def save(self, directory: str) -> None:
        self.learner.save(Path(directory))

    def restore(self, directory: str) -> None:
        self.learner.restore(Path(directory))
