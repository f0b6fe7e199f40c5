"""Placement groups: what a part reserves (one bundle on one node), reserving it, scheduling an actor into it,
and, inside a Ray Tune trial, using the bundles the trial's own group reserved."""
from __future__ import annotations

from dataclasses import dataclass

import ray
from ray.exceptions import GetTimeoutError
from ray.util.placement_group import (PlacementGroup, get_current_placement_group, placement_group,
                                      remove_placement_group)
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@dataclass(frozen=True)
class Resources:
    """What one spawned part reserves (Ray logical CPUs and GPUs; a placement-group bundle)."""

    cpus: float = 1.0
    gpus: float = 0.0

    def bundle(self) -> dict[str, float]:
        """The placement-group bundle (zero amounts left out)."""
        return {name: amount for name, amount in (("CPU", self.cpus), ("GPU", self.gpus)) if amount > 0}


class PlacementError(RuntimeError):
    """No node could hold a bundle in time; the message names the bundle and the fix."""


def reserve_bundle(bundle: dict[str, float], timeout_s: float, what: str) -> PlacementGroup:
    """A placement group holding `bundle` (strategy PACK), once Ray has placed it."""
    group = placement_group([bundle], strategy="PACK")
    try:
        ray.get(group.ready(), timeout=timeout_s)
    except GetTimeoutError as e:
        remove_placement_group(group)
        raise PlacementError(
            f"no node could hold the bundle {bundle} of a {what} within {timeout_s:g} s; lower its CPUs / GPUs "
            f"or add nodes with those resources") from e
    return group


def scheduling_in(group: PlacementGroup) -> PlacementGroupSchedulingStrategy:
    """Schedule an actor into the group's only bundle; the tasks and actors it starts stay in the group."""
    return PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0,
                                            placement_group_capture_child_tasks=True)


def trial_group_strategy(bundle_index: int = -1) -> PlacementGroupSchedulingStrategy | None:
    """Inside a placement group made for us (a Ray Tune trial's, which reserved a bundle for every actor of
    the trial: cluster/tune.py resource_bundles), schedule into its bundle `bundle_index` (-1: any that fits)
    and make no group of our own; None outside any placement group."""
    group = get_current_placement_group()
    return None if group is None else PlacementGroupSchedulingStrategy(
        group, placement_group_bundle_index=bundle_index, placement_group_capture_child_tasks=True)


def claim_trial_bundles(bundle: dict[str, float], taken: set[int], count: int = 1) -> list[int]:
    """Indices of `count` bundles of the current (trial's) placement group that hold exactly `bundle`, past
    bundle 0 (the trial's own) and not in `taken` (which they are added to); [] when there are fewer. Actors
    pinned to bundles of their own size cannot fragment the group ("any bundle that fits" can: a small actor
    in a large bundle leaves a large actor no room)."""
    group = get_current_placement_group()
    if group is None or not bundle:
        return []
    same = [i for i, spec in enumerate(group.bundle_specs) if i > 0 and i not in taken
            and {k for k, v in spec.items() if v > 0} == set(bundle)
            and all(abs(spec[k] - v) < 1e-9 for k, v in bundle.items())]
    if len(same) < count:
        return []
    taken.update(same[:count])
    return same[:count]
