"""`llmrl plan`: where a run's actors would go on a cluster, worked out without starting anything.

Every actor a run starts is one placement-group bundle (its CPUs and GPUs on one node: the algorithm's
`resource_roles`). The plan packs them first-fit-decreasing (GPU-heaviest first) onto the nodes a cluster can
have: the head, then each worker node type up to its `max_workers`, as Ray's autoscaler would start them.
A bundle that no node type can hold, or a run bigger than the cluster at full size, is refused with a
`PlanError` naming the role, the bundle and the node types (and how many more nodes it would take).

Nodes come from a cluster-launcher config (`--cluster ray_config.yaml`), a list (`--nodes "1x8CPU,2x8CPU+8GPU"`),
or this machine (the run's `ray.num_cpus` / `ray.num_gpus`, else its cores and CUDA devices).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from cluster.config import ConfigError
from cluster.methods import algorithm_class

Bundle = dict[str, float]
EPS = 1e-9


class PlanError(ConfigError):
    """A run that cannot be placed on the given nodes."""


@dataclass(frozen=True)
class NodeType:
    """Nodes of one kind: their resources and how many the cluster may have."""

    name: str
    resources: Bundle
    count: int

    def holds(self, bundle: Bundle) -> bool:
        """Whether one node of this type can hold `bundle`."""
        return all(self.resources.get(k, 0.0) + EPS >= v for k, v in bundle.items())


@dataclass
class Node:
    """One node of the plan and what its bundles take."""

    type: NodeType
    index: int
    used: Bundle = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.type.name}#{self.index}"

    @property
    def left(self) -> Bundle:
        return {k: v - self.used.get(k, 0.0) for k, v in self.type.resources.items()}

    def fits(self, bundle: Bundle) -> bool:
        left = self.left
        return all(left.get(k, 0.0) + EPS >= v for k, v in bundle.items())

    def take(self, bundle: Bundle) -> None:
        for k, v in bundle.items():
            self.used[k] = self.used.get(k, 0.0) + v


@dataclass(frozen=True)
class Placement:
    role: str
    bundle: Bundle
    node: str


@dataclass(frozen=True)
class Plan:
    """Each role's bundle and node, and every node with what is used and left (unused nodes left out)."""

    placements: list[Placement]
    nodes: list[Node]
    node_types: list[NodeType]

    def to_dict(self) -> dict[str, Any]:
        return {"placements": [{"role": p.role, "bundle": p.bundle, "node": p.node} for p in self.placements],
                "nodes": [{"node": n.name, "type": n.type.name, "resources": n.type.resources, "used": n.used,
                           "left": n.left} for n in self.nodes],
                "node_types": [{"name": t.name, "resources": t.resources, "count": t.count} for t in self.node_types]}


# ---- what a run reserves -------------------------------------------------------------------------------------
def resource_bundles(config: Any, own_role: str = "driver", own_cpus: float = 0.0) -> list[tuple[str, Bundle]]:
    """(role, bundle) of everything a run of `config` reserves: its own process's bundle (`own_cpus`: a Tune
    trainable's; `llmrl run`'s driver reserves nothing) first, then the actors its algorithm starts
    (`resource_roles` of the method's Algorithm class: learner, scorer workers, env runners...). Without use_ray,
    the process's bundle holds them all (they run in it)."""
    own = {"CPU": own_cpus} if own_cpus > 0 else {}
    roles = [(role, bundle) for role, bundle in algorithm_class(config.method).resource_roles(config) if bundle]
    if not config.use_ray:
        for _, bundle in roles:
            own = {k: own.get(k, 0.0) + bundle.get(k, 0.0) for k in {**own, **bundle}}
        return [(own_role, own)] if own else []
    return ([(own_role, own)] if own else []) + roles


# ---- where it can go -----------------------------------------------------------------------------------------
_NODE_SPEC = re.compile(r"^(?:(\d+)\s*x\s*)?(.+)$")
_RESOURCE = re.compile(r"^(\d+(?:\.\d+)?)\s*([A-Za-z_][A-Za-z0-9_:-]*)$")


def parse_nodes(spec: str) -> list[NodeType]:
    """Node types from "COUNTxRES[+RES...],...", e.g. "1x8CPU,2x8CPU+8GPU" (a count of 1 may be left out)."""
    types = []
    for part in (p.strip() for p in spec.split(",")):
        match = _NODE_SPEC.match(part)
        if not part or not match:
            raise ConfigError(f"--nodes: {part!r} is not a node type; write COUNTxRESOURCES, e.g. "
                              f"\"1x8CPU,2x8CPU+8GPU\"")
        resources: Bundle = {}
        for item in match.group(2).split("+"):
            amount = _RESOURCE.match(item.strip())
            if not amount:
                raise ConfigError(f"--nodes: {item.strip()!r} in {part!r} is not AMOUNT+RESOURCE (e.g. 8CPU, 8GPU)")
            name = amount.group(2).upper() if amount.group(2).upper() in ("CPU", "GPU") else amount.group(2)
            resources[name] = resources.get(name, 0.0) + float(amount.group(1))
        count = int(match.group(1) or 1)
        if count < 1:
            raise ConfigError(f"--nodes: {part!r} has a count of {count}; give at least 1")
        types.append(NodeType(match.group(2).replace(" ", ""), resources, count))
    return types


def cluster_node_types(launcher: dict) -> list[NodeType]:
    """Node types of a Ray cluster-launcher config at full size: the head once, each worker type up to its
    max_workers (capped by the cluster's max_workers)."""
    try:
        types, head = launcher["available_node_types"], launcher["head_node_type"]
    except (KeyError, TypeError) as e:
        raise ConfigError(f"the cluster config has no {e} key: is it a Ray cluster-launcher config "
                          f"(available_node_types, head_node_type)?") from None
    cap = int(launcher.get("max_workers", 10**6))
    out = [NodeType(head, {k: float(v) for k, v in types[head].get("resources", {}).items()}, 1)]
    for name, node in types.items():
        if name != head and int(node.get("max_workers", 0)) > 0:
            out.append(NodeType(name, {k: float(v) for k, v in node.get("resources", {}).items()},
                                min(int(node["max_workers"]), cap)))
    return out


def local_node_types(config: Any) -> list[NodeType]:
    """This machine as Ray would see it for `config` (its ray.num_cpus / ray.num_gpus, else detected)."""
    ray_config = getattr(config, "ray", None)
    cpus = getattr(ray_config, "num_cpus", None)
    gpus = getattr(ray_config, "num_gpus", None)
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count()
    resources = {"CPU": float(cpus if cpus is not None else os.cpu_count() or 1)}
    if gpus:
        resources["GPU"] = float(gpus)
    return [NodeType("this-machine", resources, 1)]


# ---- packing -------------------------------------------------------------------------------------------------
def plan_placement(roles: list[tuple[str, Bundle]], node_types: list[NodeType]) -> Plan:
    """Pack every (role, bundle) onto nodes, first fit, biggest bundles first (GPUs, then CPUs). A bundle without
    GPUs goes to a node without GPUs where one has room (as Ray's scheduler keeps CPU work off GPU nodes); new
    nodes open in the order of `node_types`, and the first type's first node (the head) is always up.
    Raises PlanError when something cannot be placed."""
    for role, bundle in roles:
        if not any(t.holds(bundle) for t in node_types):
            raise PlanError(f"{role} needs {_shown(bundle)} on one node, but no node type holds that: "
                            f"{_types_shown(node_types)}; lower its resources in the config or add a bigger node type")
    nodes = [Node(node_types[0], 0)] if node_types else []
    opened = {t.name: int(i == 0) for i, t in enumerate(node_types)}
    placements: dict[int, Placement] = {}
    unplaced: list[tuple[str, Bundle]] = []
    for k in _biggest_first(roles):
        role, bundle = roles[k]
        node = next((n for n in _preferred(nodes, bundle, lambda n: n.type) if n.fits(bundle)), None)
        if node is None:
            node_type = next((t for t in _preferred(node_types, bundle, lambda t: t)
                              if opened[t.name] < t.count and t.holds(bundle)), None)
            if node_type is None:
                unplaced.append((role, bundle))
                continue
            node = Node(node_type, opened[node_type.name])
            opened[node_type.name] += 1
            nodes.append(node)
        node.take(bundle)
        placements[k] = Placement(role, bundle, node.name)
    if unplaced:
        raise PlanError(_full_message(unplaced, node_types))
    used = [n for n in nodes if n.used or n is nodes[0]]
    return Plan([placements[k] for k in range(len(roles))], used, node_types)


def _preferred(items: list, bundle: Bundle, type_of) -> list:
    """`items` (nodes or node types) with, for a bundle needing no GPU, those without GPUs first (stable)."""
    if bundle.get("GPU", 0.0) > 0:
        return items
    return sorted(items, key=lambda item: type_of(item).resources.get("GPU", 0.0) > 0)


def _biggest_first(roles: list[tuple[str, Bundle]]) -> list[int]:
    return sorted(range(len(roles)), key=lambda k: (-roles[k][1].get("GPU", 0.0), -roles[k][1].get("CPU", 0.0),
                                                    -sum(roles[k][1].values()), k))


def _full_message(unplaced: list[tuple[str, Bundle]], node_types: list[NodeType]) -> str:
    """Which roles did not fit, and how many more nodes of which type would hold them."""
    extra: dict[str, int] = {}
    fresh: list[Node] = []
    for role, bundle in unplaced:
        node = next((n for n in fresh if n.fits(bundle)), None)
        if node is None:
            node_type = next(t for t in _preferred(node_types, bundle, lambda t: t) if t.holds(bundle))
            node = Node(node_type, len(fresh))
            fresh.append(node)
            extra[node_type.name] = extra.get(node_type.name, 0) + 1
        node.take(bundle)
    roles = ", ".join(f"{role} ({_shown(bundle)})" for role, bundle in unplaced[:6])
    more = "" if len(unplaced) <= 6 else f" and {len(unplaced) - 6} more"
    needed = " and ".join(f"{n} more {name} node{'s' if n > 1 else ''}" for name, n in extra.items())
    return (f"the cluster is full at its maximum size ({_types_shown(node_types)}): {roles}{more} do not fit; "
            f"it would take {needed} (raise max_workers in the cluster config, add nodes, or shrink the run: "
            f"fewer pool.num_workers / num_runners, smaller reservations)")


# ---- text ----------------------------------------------------------------------------------------------------
def _shown(bundle: Bundle) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in sorted(bundle.items())) or "nothing"


def _types_shown(node_types: list[NodeType]) -> str:
    return "; ".join(f"{t.count}x {t.name} ({_shown(t.resources)})" for t in node_types)


def format_plan(plan: Plan, title: str) -> str:
    """The plan as the table `llmrl plan` prints."""
    width = max([len("role")] + [len(p.role) for p in plan.placements])
    lines = [title, f"nodes available: {_types_shown(plan.node_types)}", "",
             f"{'role':<{width}}  {'bundle':<22}  node"]
    lines += [f"{p.role:<{width}}  {_shown(p.bundle):<22}  {p.node}" for p in plan.placements]
    if not plan.placements:
        lines.append("(no actors: everything runs in the driver's process, which reserves nothing)")
    lines += ["", "nodes used:"]
    for node in plan.nodes:
        used = ", ".join(f"{node.used.get(k, 0.0):g}/{v:g} {k}" for k, v in sorted(node.type.resources.items()))
        lines.append(f"  {node.name:<{width}}  used {used}; left {_shown({k: v for k, v in node.left.items() if v > EPS})}")
    spare = [f"{t.count - sum(n.type is t for n in plan.nodes)}x {t.name}" for t in plan.node_types
             if t.count > sum(n.type is t for n in plan.nodes)]
    lines.append(f"nodes not needed: {', '.join(spare) if spare else 'none'}")
    return "\n".join(lines)


def plan_command(config_path: str, overrides: list[str], cluster: str | None = None, nodes: str | None = None,
                 as_json: bool = False) -> str:
    """What `llmrl plan` prints: the plan of a run config on a cluster config, a node list or this machine."""
    import json

    from cluster.config import read_yaml
    from cluster.methods import load_config

    if cluster and nodes:
        raise ConfigError("give --cluster or --nodes, not both")
    config = load_config(config_path, overrides)
    if cluster:
        node_types, where = cluster_node_types(read_yaml(cluster)), cluster
    elif nodes:
        node_types, where = parse_nodes(nodes), f"--nodes {nodes}"
    else:
        node_types, where = local_node_types(config), "this machine"
    result = plan_placement(resource_bundles(config), node_types)
    if as_json:
        return json.dumps({"config": config_path, "method": config.method, "where": where, **result.to_dict()},
                          indent=2)
    return format_plan(result, f"plan of {config_path} (method {config.method}) on {where}")
