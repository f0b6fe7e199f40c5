"""What a scorer pool is: how many workers (fixed or autoscaled within bounds) and what each one reserves."""
from __future__ import annotations

from dataclasses import dataclass

from actors.placement import Resources
from cluster.config import check_range, require
from policies.config import BackendConfig


@dataclass(frozen=True)
class PoolConfig:
    """How many scorer workers, what each one reserves, and when the pool grows or shrinks."""

    num_workers: int = 1
    """Scorer workers (Ray actors), each with its own copy of the model (the start count when autoscaled)."""
    cpus_per_worker: float = 1.0
    """Ray CPUs reserved per worker."""
    gpus_per_worker: float = 0.0
    """Ray GPUs reserved per worker (0 on CPU machines)."""
    max_retries: int = 3
    """Times a shard is resent after its worker died before the request fails."""
    placement_timeout_s: float = 300.0
    """How long a worker's placement group may wait for its resources before the start fails."""
    min_workers: int | None = None
    """Autoscaling's lower bound (set it and max_workers to autoscale; null: num_workers stays fixed)."""
    max_workers: int | None = None
    """Autoscaling's upper bound; the pool also never grows past the cluster's free resources."""
    scale_up_queue: float = 1.0
    """Grow when this many shards per worker wait behind busy workers..."""
    scale_up_after_s: float = 5.0
    """...for this many seconds without a break."""
    scale_down_idle_s: float = 60.0
    """Shrink when nothing was in flight for this many seconds."""
    check_interval_s: float = 1.0
    """How often the autoscaler samples the load."""
    drain_timeout_s: float = 120.0
    """How long a removed worker may take to finish its shards; past it, it is stopped and they are resent."""

    @property
    def autoscaled(self) -> bool:
        return self.min_workers is not None

    def __post_init__(self):
        check_range(self, "num_workers", ge=1)
        require((self.min_workers is None) == (self.max_workers is None), "min_workers", self.min_workers,
                "set both min_workers and max_workers to autoscale, or neither for a fixed num_workers")
        if self.autoscaled:
            require(1 <= self.min_workers <= self.num_workers <= self.max_workers, "num_workers", self.num_workers,
                    f"need 1 <= min_workers ({self.min_workers}) <= num_workers <= max_workers ({self.max_workers})")
        check_range(self, "scale_up_queue", "scale_up_after_s", "check_interval_s", "drain_timeout_s", gt=0)
        check_range(self, "scale_down_idle_s", ge=0)
        check_range(self, "cpus_per_worker", "gpus_per_worker", "max_retries", ge=0)
        require(self.cpus_per_worker > 0 or self.gpus_per_worker > 0, "cpus_per_worker", self.cpus_per_worker,
                "a worker must reserve some resources: set cpus_per_worker or gpus_per_worker > 0")
        check_range(self, "placement_timeout_s", gt=0)


def worker_resources(pool: PoolConfig, backend: BackendConfig) -> Resources:
    """Ray resources of one worker. A GPU vLLM engine with tensor parallelism takes one whole GPU per rank;
    Ray gives an actor all its GPUs on one node, where vLLM runs the ranks as its own processes."""
    ranks = backend.vllm.tensor_parallel_size if backend.backend == "vllm" else 1
    if ranks > 1 and pool.gpus_per_worker not in (0, ranks):
        raise ValueError(f"vllm.tensor_parallel_size={ranks} needs one GPU per rank: set gpus_per_worker: {ranks} "
                         f"(got {pool.gpus_per_worker:g})")
    if pool.cpus_per_worker <= 0 and pool.gpus_per_worker <= 0:
        raise ValueError("a scorer worker must reserve some resources: set cpus_per_worker or gpus_per_worker > 0")
    return Resources(pool.cpus_per_worker, pool.gpus_per_worker)


def scorer_roles(pool: PoolConfig, backend: BackendConfig) -> list[tuple[str, dict[str, float]]]:
    """(role, placement bundle) of each scorer worker of a pool: what an algorithm's `resource_roles` lists."""
    bundle = worker_resources(pool, backend).bundle()
    return [(f"scorer_worker[{i}]", dict(bundle)) for i in range(pool.num_workers)]
