"""ScorerPool: shards requests over ScorerWorker actors, keeps order, survives worker deaths,
scales at runtime and pushes versioned weights to every worker (including later ones)."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import ray
import torch
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from ray.util.placement_group import PlacementGroup, get_current_placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from actors.placement import reserve_bundle, scheduling_in
from actors.scorer_worker import ScorerWorker
from actors.sharding import Shard, merge_scores, plan_shards, shard_request
from cluster.config import check_range, require
from policies.backend import GenerateResult, ScoreResult
from policies.config import BackendConfig
from policies.generation import validate_generate_args
from policies.models import resolve_model
from policies.tokenization import validate_request
from policies.value_head import ValueHeadConfig

log = logging.getLogger(__name__)
_WORKER_LOST = (RayActorError, ActorDiedError, ActorUnavailableError)


@dataclass(frozen=True)
class StoredWeights:
    """Weights already in the Ray object store. Handed to a pool that runs as an actor, the reference
    goes on to the workers as it is: the pool neither unpickles nor stores the weights again."""

    ref: ray.ObjectRef

    @classmethod
    def put(cls, weights: Mapping[str, torch.Tensor]) -> "StoredWeights":
        return cls(ray.put(dict(weights)))


@dataclass(frozen=True)
class PoolConfig:
    """How many scorer workers, and what each one reserves."""

    num_workers: int = 1
    """Scorer workers (Ray actors), each with its own copy of the model."""
    cpus_per_worker: float = 1.0
    """Ray CPUs reserved per worker."""
    gpus_per_worker: float = 0.0
    """Ray GPUs reserved per worker (0 on CPU machines)."""
    max_retries: int = 3
    """Times a shard is resent after its worker died before the request fails."""
    placement_timeout_s: float = 300.0
    """How long a worker's placement group may wait for its resources before the start fails."""

    def __post_init__(self):
        check_range(self, "num_workers", ge=1)
        check_range(self, "cpus_per_worker", "gpus_per_worker", "max_retries", ge=0)
        require(self.cpus_per_worker > 0 or self.gpus_per_worker > 0, "cpus_per_worker", self.cpus_per_worker,
                "a worker must reserve some resources: set cpus_per_worker or gpus_per_worker > 0")
        check_range(self, "placement_timeout_s", gt=0)


def worker_resources(pool: PoolConfig, backend: BackendConfig) -> dict[str, float]:
    """Ray resources of one worker. A GPU vLLM engine with tensor parallelism takes one whole GPU per rank;
    Ray gives an actor all its GPUs on one node, where vLLM runs the ranks as its own processes."""
    ranks = backend.vllm.tensor_parallel_size if backend.backend == "vllm" else 1
    if ranks > 1 and pool.gpus_per_worker not in (0, ranks):
        raise ValueError(f"vllm.tensor_parallel_size={ranks} needs one GPU per rank: set gpus_per_worker: {ranks} "
                         f"(got {pool.gpus_per_worker:g})")
    if pool.cpus_per_worker <= 0 and pool.gpus_per_worker <= 0:
        raise ValueError("a scorer worker must reserve some resources: set cpus_per_worker or gpus_per_worker > 0")
    return {"CPU": pool.cpus_per_worker, "GPU": pool.gpus_per_worker}


def scorer_roles(pool: PoolConfig, backend: BackendConfig) -> list[tuple[str, dict[str, float]]]:
    """(role, placement bundle) of each scorer worker of a pool: what an algorithm's `resource_roles` lists."""
    bundle = worker_bundle(worker_resources(pool, backend))
    return [(f"scorer_worker[{i}]", dict(bundle)) for i in range(pool.num_workers)]


def worker_bundle(resources: dict[str, float]) -> dict[str, float]:
    """The placement-group bundle that reserves one worker's resources (zero amounts left out)."""
    return {name: amount for name, amount in resources.items() if amount > 0}


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


class RemoteScorer:
    """A scorer living in a Ray actor (a ScorerPool actor), called as if it were local: the scoring
    interface (score, generate) that env runners, ICPI and the CLI use."""

    def __init__(self, actor: Any, on_shutdown: Callable[[], None] | None = None):
        self.actor = actor
        self.on_shutdown = on_shutdown

    def score(self, *args, **kwargs) -> ScoreResult:
        return ray.get(self.actor.score.remote(*args, **kwargs))

    def generate(self, *args, **kwargs) -> GenerateResult:
        return ray.get(self.actor.generate.remote(*args, **kwargs))

    def shutdown(self) -> None:
        """Stop the pool's workers (freeing their placement groups), then the pool actor itself."""
        ray.get(self.actor.shutdown.remote())
        if self.on_shutdown is not None:
            self.on_shutdown()


class WorkerStartError(RuntimeError):
    """A scorer worker could not start (its model failed to load, say)."""


class ScorerPool:
    """Routes score / generate / hidden requests over N scorer workers; thread-safe."""

    def __init__(self, backend: BackendConfig, pool: PoolConfig = PoolConfig(),
                 value_head: ValueHeadConfig | None = None, bundle_indices: Sequence[int] = ()):
        """`bundle_indices`: inside a Ray Tune trial, the bundles of the trial's placement group reserved for the
        workers (one each; cluster/runtime.py RayRuntime.scorer claims them); none: any bundle that fits."""
        if pool.num_workers < 1:
            raise ValueError(f"pool.num_workers={pool.num_workers}: need at least one scorer worker")
        if not ray.is_initialized():
            raise RuntimeError("ScorerPool runs its workers as Ray actors: start Ray first (cluster.ray_runtime."
                               "ensure_ray), or score in-process with policies.backend.make_backend")
        self.resources = worker_resources(pool, backend)
        resolve_model(backend.model)  # convert a bundled model once, here, before workers race for it
        self.backend_config = backend
        self.value_head_config = value_head
        self.config = pool
        self._lock = threading.RLock()
        self._weights_ref: ray.ObjectRef | None = None
        self._version = 0
        self._replacements: dict[Any, Any] = {}
        self._workers: list[Any] = []
        self._groups: dict[Any, PlacementGroup] = {}
        """Each worker's placement group (one bundle: its CPUs and GPUs, on one node)."""
        self._free_bundles = list(bundle_indices)
        self._bundles: dict[Any, int] = {}
        """Inside a Tune trial: each worker's bundle of the trial's group."""
        self.restarts = 0
        self.add_workers(pool.num_workers)

    # ---- membership --------------------------------------------------------------------
    @property
    def num_workers(self) -> int:
        return len(self._workers)

    @property
    def version(self) -> int:
        return self._version

    def workers(self) -> list[Any]:
        """A snapshot of the live worker handles."""
        with self._lock:
            return list(self._workers)

    def _start_worker(self, group: PlacementGroup | None = None, bundle: int | None = None):
        """A ready worker holding the pool's current weights, in `group` (default: a new placement group;
        inside a Ray Tune trial: the trial's group, in `bundle` or a free reserved one)."""
        if group is None and bundle is None and self._free_bundles:
            bundle = self._free_bundles.pop(0)
        strategy = trial_group_strategy(-1 if bundle is None else bundle) if group is None else None
        if strategy is None:
            group = group or reserve_bundle(worker_bundle(self.resources), self.config.placement_timeout_s,
                                            what="scorer worker")
            strategy = scheduling_in(group)
        remote_worker = ray.remote(ScorerWorker).options(
            num_cpus=self.resources["CPU"], num_gpus=self.resources["GPU"], max_restarts=0,
            scheduling_strategy=strategy)
        worker = remote_worker.remote(self.backend_config, self.value_head_config)
        try:
            if self._weights_ref is not None:
                ray.get(worker.load_weights.remote(self._weights_ref, self._version))
            else:
                ray.get(worker.version.remote())
        except _WORKER_LOST as e:
            if group is not None:
                remove_placement_group(group)
            if bundle is not None:
                self._free_bundles.append(bundle)
            raise WorkerStartError(f"a scorer worker for model {self.backend_config.model!r} failed to start: {e}") from e
        if group is not None:
            self._groups[worker] = group
        if bundle is not None:
            self._bundles[worker] = bundle
        return worker

    def _stop(self, worker) -> None:
        """Kill a worker and free its placement group."""
        ray.kill(worker, no_restart=True)
        group = self._groups.pop(worker, None)
        if group is not None:
            remove_placement_group(group)
        if worker in self._bundles:
            self._free_bundles.append(self._bundles.pop(worker))

    def _check_capacity(self, total_workers: int) -> None:
        """Fail fast (instead of waiting forever) when the cluster cannot hold that many workers."""
        have = ray.cluster_resources()
        for resource, per_worker in self.resources.items():
            need = per_worker * total_workers
            if need > have.get(resource, 0.0) + 1e-9:
                raise ValueError(
                    f"{total_workers} scorer workers x {per_worker:g} {resource} need {need:g} {resource}, but the "
                    f"Ray cluster has {have.get(resource, 0.0):g}; use fewer workers or lower "
                    f"{resource.lower()}s_per_worker (fractions are allowed)"
                )

    def add_workers(self, n: int) -> None:
        """Start n more workers; each gets the current weights before it serves."""
        self._check_capacity(self.num_workers + n)
        with self._lock:  # held so a concurrent load_weights cannot slip between start and join
            self._workers.extend(self._start_worker() for _ in range(n))

    def remove_workers(self, n: int) -> None:
        """Stop the n most recently added workers (at least one stays)."""
        with self._lock:
            if n >= len(self._workers):
                raise ValueError(f"cannot remove {n} of {len(self._workers)} workers: at least one must stay")
            removed = self._workers[len(self._workers) - n:]
            del self._workers[len(self._workers) - n:]
        for worker in removed:
            self._stop(worker)

    def _replacement_for(self, dead, slot: int):
        """The worker to resend a lost shard to: a fresh one in the dead worker's place, or a live one."""
        with self._lock:
            if dead in self._replacements:
                return self._replacements[dead]
            if dead not in self._workers:  # removed or already replaced: any live worker will do
                return self._workers[slot % len(self._workers)]
            index = self._workers.index(dead)
            try:
                ray.kill(dead, no_restart=True)
            except Exception:  # already gone
                pass
            fresh = self._start_worker(self._groups.pop(dead, None), self._bundles.pop(dead, None))  # its reservation
            self._workers[index] = fresh
            self._replacements[dead] = fresh
            self.restarts += 1
            log.warning("scorer worker %d died; restarted it and resent its shard", index)
            return fresh

    # ---- dispatch ----------------------------------------------------------------------
    def _run(self, method: str, payloads: Sequence[tuple[tuple, dict]]) -> list[Any]:
        """Run payload k on worker k (mod N); resend a payload whose worker dies. Answers in payload order."""
        workers = self.workers()
        assigned = [workers[k % len(workers)] for k in range(len(payloads))]
        pending = {getattr(w, method).remote(*args, **kwargs): k for k, (w, (args, kwargs)) in enumerate(zip(assigned, payloads))}
        answers: list[Any] = [None] * len(payloads)
        tries = [0] * len(payloads)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            k = pending.pop(ref)
            try:
                answers[k] = ray.get(ref)
            except _WORKER_LOST:
                tries[k] += 1
                if tries[k] > self.config.max_retries:
                    raise
                assigned[k] = self._replacement_for(assigned[k], k)
                args, kwargs = payloads[k]
                pending[getattr(assigned[k], method).remote(*args, **kwargs)] = k
        return answers

    def score(self, contexts: Sequence[str], candidates: Sequence[Sequence[str]], *, mean: bool = False,
              with_hidden: bool = False, with_values: bool = False) -> ScoreResult:
        """Log-probs of every candidate, in request order, identical for any number of workers.

        (Bitwise identical on CPU, where every worker runs the same number of intra-op threads;
        BLAS rounding can depend on the thread count, so a bare backend matches at the same count.)
        """
        validate_request(contexts, candidates)
        counts = [len(c) for c in candidates]
        costs = [len(ctx) + sum(map(len, cands)) for ctx, cands in zip(contexts, candidates)]
        shards = plan_shards(counts, self.num_workers, costs)
        options = dict(mean=mean, with_hidden=with_hidden, with_values=with_values)
        payloads = [(shard_request(s, contexts, candidates), options) for s in shards]
        answers: list[ScoreResult] = self._run("score", payloads)
        return ScoreResult(
            logprobs=merge_scores(shards, [a.logprobs for a in answers], counts),
            versions=_per_context(shards, [a.versions for a in answers], len(contexts), min),
            hidden=torch.stack(_per_context(shards, [list(a.hidden) for a in answers], len(contexts), _first))
            if with_hidden else None,
            values=_per_context(shards, [a.values for a in answers], len(contexts), _first) if with_values else None,
        )

    def hidden(self, contexts: Sequence[str]) -> torch.Tensor:
        """[num_contexts, H] hidden states for value heads."""
        validate_request(contexts, [["?"]] * len(contexts))
        shards = plan_shards([1] * len(contexts), self.num_workers)
        payloads = [(([contexts[i] for i in s.contexts],), {}) for s in shards]
        answers = self._run("hidden", payloads)
        return torch.stack(_per_context(shards, [list(a) for a in answers], len(contexts), _first))

    def generate(self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 32, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] = (), seed: int | None = None) -> GenerateResult:
        """n completions per prompt, prompts sharded over workers. Greedy output is identical for any N."""
        validate_generate_args(prompts, n, max_new_tokens, temperature, top_p)
        shards = plan_shards([1] * len(prompts), self.num_workers)
        kwargs = dict(n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stop=tuple(stop),
                      seed=seed)
        payloads = [(([prompts[i] for i in s.contexts],), kwargs) for s in shards]
        answers: list[GenerateResult] = self._run("generate", payloads)
        return GenerateResult(
            texts=_per_context(shards, [a.texts for a in answers], len(prompts), _first),
            versions=_per_context(shards, [a.versions for a in answers], len(prompts), min),
        )

    # ---- weights -----------------------------------------------------------------------
    def load_weights(self, weights: Mapping[str, torch.Tensor] | StoredWeights, version: int) -> None:
        """Publish weights as `version` to every worker now and to every worker started later."""
        stored = weights if isinstance(weights, StoredWeights) else StoredWeights.put(weights)
        with self._lock:
            self._weights_ref = stored.ref
            self._version = int(version)
            payloads = [((self._weights_ref, self._version), {})] * len(self._workers)
            self._run("load_weights", payloads)

    def get_weights(self) -> dict[str, torch.Tensor]:
        return self._run("get_weights", [((), {})])[0]

    def info(self) -> list[dict]:
        return self._run("info", [((), {})] * self.num_workers)

    def shutdown(self) -> None:
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            self._stop(worker)


def _first(values: list) -> Any:
    return values[0]


def _per_context(shards: Sequence[Shard], answers: Sequence[Sequence[Any]], n: int,
                 combine: Callable[[list], Any]) -> list[Any]:
    """One value per context from per-shard, per-context answers (combining a context's shards)."""
    collected: list[list[Any]] = [[] for _ in range(n)]
    for shard, answer in zip(shards, answers):
        for i, value in zip(shard.contexts, answer):
            collected[i].append(value)
    return [combine(values) for values in collected]
