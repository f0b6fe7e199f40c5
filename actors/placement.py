"""Placement groups: reserve one bundle of resources on one node, and schedule an actor into it."""
from __future__ import annotations

import ray
from ray.exceptions import GetTimeoutError
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy


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
