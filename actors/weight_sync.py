"""Weight sync: how a learner's new weights reach the scorer workers. One interface, one transport per
way of moving tensors; every method that publishes weights goes through it.

`ObjectStoreSync` puts the weights in the Ray object store once, from the learner's process, and
hands the reference to the scorer pool actor, which passes it on to its workers as it is (no
unpickling and re-putting in between). `SharedPolicySync` is for one process, where the scorer is
the learner's own policy: there is nothing to send. An NCCL or CUDA-IPC transport would be a third
class with the same `publish`.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol

import torch

from actors.scorer_pool import StoredWeights


class WeightSource(Protocol):
    """What a learner offers a sync: its weights and their version."""

    @property
    def version(self) -> int: ...

    def get_weights(self) -> Mapping[str, torch.Tensor]: ...


class WeightSync(Protocol):
    def publish(self, source: WeightSource) -> None:
        """Make `source`'s current weights, stamped with its version, the ones the scorers use."""


class ObjectStoreSync:
    """Through the Ray object store to a ScorerPool actor (see the module docstring)."""

    def __init__(self, pool_actor: Any):
        self.pool_actor = pool_actor

    def publish(self, source: WeightSource) -> None:
        import ray

        ray.get(self.pool_actor.load_weights.remote(StoredWeights.put(source.get_weights()), source.version))


class SharedPolicySync:
    """In one process the scorer is the learner's own policy: its weights are already current."""

    def publish(self, source: WeightSource) -> None:
        pass
