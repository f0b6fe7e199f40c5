"""Where an algorithm's parts run: in this process, or as Ray actors each in its own placement group.

Algorithms never touch Ray themselves: they ask the runtime to `spawn` a plain class (a learner,
an env runner, a scorer pool) with the resources it needs, call its methods through the handle
(`handle.call(name, ...)` returns a future), and `get` the results. `LocalRuntime` runs everything
in this process (calls return their results at once); `RayRuntime` starts or joins Ray and runs
each spawned object as an actor. The same algorithm code and config run both ways.
"""
from __future__ import annotations

from typing import Any, Sequence

from actors.placement import Resources
from actors.pool_config import PoolConfig
from cluster.ray_runtime import RayConfig, ensure_ray
from policies.config import BackendConfig
from policies.value_head import ValueHeadConfig


class LocalHandle:
    """A spawned object in this process; `call` runs the method now and returns its result."""

    def __init__(self, obj: Any):
        self.obj = obj

    def call(self, method: str, *args, **kwargs) -> Any:
        return getattr(self.obj, method)(*args, **kwargs)


class LocalRuntime:
    """Everything in this process, no Ray."""

    distributed = False

    def spawn(self, cls: type, *args, resources: Resources = Resources(), concurrency: int = 1, **kwargs) -> LocalHandle:
        return LocalHandle(cls(*args, **kwargs))

    def get(self, futures: Any) -> Any:
        return futures

    def scorer(self, backend: BackendConfig, pool: PoolConfig, value_head: ValueHeadConfig | None = None):
        """The scoring interface (score, generate) in this process: the backend itself."""
        if value_head is not None:
            from policies.llm_policy import LLMPolicy

            served = LLMPolicy(backend, value_head)
        else:
            from policies.backend import make_backend

            served = make_backend(backend)
        served.freeze()
        return served

    def kill(self, handle: LocalHandle) -> None:
        pass

    def shutdown(self) -> None:
        pass


class RayHandle:
    """A Ray actor; `call` returns an ObjectRef. `actor` is the raw handle, for passing to other actors."""

    def __init__(self, actor: Any, group: Any = None):
        self.actor = actor
        self.group = group

    def call(self, method: str, *args, **kwargs) -> Any:
        return getattr(self.actor, method).remote(*args, **kwargs)


class RayRuntime:
    """Each spawned object is a Ray actor in a placement group holding its resources as one bundle
    (so a learner's CPUs and GPUs are reserved together on one node); zero-resource parts (routers)
    get no group. Inside a Ray Tune trial (the caller runs in a placement group), every actor goes into
    the trial's group, which Tune reserved for all of them (cluster/tune.py resource_bundles)."""

    distributed = True

    def __init__(self, config: RayConfig | None = None, placement_timeout_s: float = 300.0):
        self.config = config
        self.placement_timeout_s = placement_timeout_s
        self._spawned: list[RayHandle] = []
        self._bundles: dict[RayHandle, list[int]] = {}
        """Inside a Tune trial: the bundles of the trial's group each actor (a pool: its workers) was given."""
        self._taken: set[int] = set()

    def spawn(self, cls: type, *args, resources: Resources = Resources(), concurrency: int = 1,
              name: str | None = None, **kwargs) -> RayHandle:
        """`name`: the actor's name in the Ray namespace cluster.scale.NAMESPACE, for other processes to find."""
        import ray

        from actors.placement import reserve_bundle, scheduling_in
        from actors.placement import claim_trial_bundles, trial_group_strategy

        ensure_ray(self.config)  # started on first use: a run that spawns nothing starts no Ray
        claimed = claim_trial_bundles(resources.bundle(), self._taken)  # inside a Ray Tune trial: a bundle
        strategy = trial_group_strategy(claimed[0] if claimed else -1)  # of the trial's group; no group of our own
        group = reserve_bundle(resources.bundle(), self.placement_timeout_s, what=cls.__name__) \
            if strategy is None and resources.bundle() else None
        options: dict[str, Any] = {"num_cpus": resources.cpus, "num_gpus": resources.gpus,
                                   "max_concurrency": concurrency}
        if group is not None:
            strategy = scheduling_in(group)
        if strategy is not None:
            options["scheduling_strategy"] = strategy
        if name is not None:
            from cluster.scale import NAMESPACE

            options.update(name=name, namespace=NAMESPACE)
        handle = RayHandle(ray.remote(cls).options(**options).remote(*args, **kwargs), group)
        self._spawned.append(handle)
        if claimed:
            self._bundles[handle] = claimed
        return handle

    def get(self, futures: Any) -> Any:
        import ray

        return ray.get(futures)

    def scorer(self, backend: BackendConfig, pool: PoolConfig, value_head: ValueHeadConfig | None = None,
               concurrency: int = 4, name: str | None = None):
        """The scoring interface (score, generate) of a ScorerPool actor routing over pool.num_workers
        scorer workers; `concurrency`: requests the router serves at once; `name`: see `spawn`."""
        from actors.placement import claim_trial_bundles
        from actors.pool_config import worker_resources
        from actors.scorer_pool import RemoteScorer, ScorerPool

        ensure_ray(self.config)
        bundles = claim_trial_bundles(worker_resources(pool, backend).bundle(), self._taken, pool.num_workers)
        handle = self.spawn(ScorerPool, backend, pool, value_head, bundle_indices=bundles, resources=Resources(0.0),
                            concurrency=concurrency, name=name)
        self._bundles[handle] = self._bundles.get(handle, []) + bundles
        return RemoteScorer(handle.actor, on_shutdown=lambda: self.kill(handle))

    def kill(self, handle: RayHandle) -> None:
        import ray
        from ray.util.placement_group import remove_placement_group

        if handle not in self._spawned:
            return
        ray.kill(handle.actor)
        if handle.group is not None:
            remove_placement_group(handle.group)
        self._taken.difference_update(self._bundles.pop(handle, []))
        self._spawned.remove(handle)

    def shutdown(self) -> None:
        """Kill every actor spawned here and free its placement group (Ray itself keeps running). A scorer
        pool should be shut down first (`scorer.shutdown()`), so that its workers' groups are freed too."""
        for handle in list(self._spawned):
            self.kill(handle)


def make_runtime(use_ray: bool, ray: RayConfig | None = None) -> LocalRuntime | RayRuntime:
    """The runtime a config asks for."""
    return RayRuntime(ray) if use_ray else LocalRuntime()


def get_all(runtime, handles: Sequence[Any], method: str, *args) -> list[Any]:
    """Call `method` on every handle at once and wait for all the answers."""
    return runtime.get([h.call(method, *args) for h in handles])
