"""ScorerPool: shards requests over ScorerWorker actors, keeps order, survives worker deaths,
scales at runtime (by hand or autoscaled; removed workers are drained first), counts every request in
and every answer out, and pushes versioned weights to every worker (including later ones)."""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import ray
import torch
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from ray.util.placement_group import PlacementGroup, remove_placement_group

from actors.autoscale import Autoscaler, Observation, workers_that_fit
from actors.placement import reserve_bundle, scheduling_in, trial_group_strategy
from actors.pool_config import PoolConfig, worker_resources
from actors.scorer_worker import ScorerWorker
from actors.sharding import Shard, merge_scores, plan_shards, shard_request
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
    """Routes score / generate / hidden requests over N scorer workers; thread-safe. Counts requests in,
    answers out and each worker's shards in flight (`stats()`); with pool.min_workers/max_workers set, a
    background thread grows and shrinks it (actors/autoscale.py)."""

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
        self._idle = threading.Condition(self._lock)
        """Notified whenever a shard is answered (draining waits on it)."""
        self._in_flight: Counter = Counter()
        """Shards sent to each worker and not yet answered."""
        self._served: Counter = Counter()
        self._draining: list[Any] = []
        """Workers taken out of dispatch, finishing their shards before they stop."""
        self._resizing = threading.Lock()
        self.requests_in = self.answers_out = self.failed = self.resizes = self.resent = 0
        self.add_workers(pool.num_workers)
        self._autoscaler = Autoscaler(pool, self._observe, self.set_workers, self._room, time.monotonic) \
            if pool.autoscaled else None
        if self._autoscaler is not None:
            self._autoscaler.start()

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
        with self._lock:
            if group is None and bundle is None and self._free_bundles:
                bundle = self._free_bundles.pop(0)
        strategy = trial_group_strategy(-1 if bundle is None else bundle) if group is None else None
        if strategy is None:
            group = group or reserve_bundle(self.resources.bundle(), self.config.placement_timeout_s,
                                            what="scorer worker")
            strategy = scheduling_in(group)
        remote_worker = ray.remote(ScorerWorker).options(
            num_cpus=self.resources.cpus, num_gpus=self.resources.gpus, max_restarts=0,
            scheduling_strategy=strategy)
        worker = remote_worker.remote(self.backend_config, self.value_head_config)
        with self._lock:
            weights, version = self._weights_ref, self._version
        try:
            if weights is not None:
                ray.get(worker.load_weights.remote(weights, version))
            else:
                ray.get(worker.version.remote())
        except _WORKER_LOST as e:
            if group is not None:
                remove_placement_group(group)
            if bundle is not None:
                with self._lock:
                    self._free_bundles.append(bundle)
            raise WorkerStartError(f"a scorer worker for model {self.backend_config.model!r} failed to start: {e}") from e
        with self._lock:
            if group is not None:
                self._groups[worker] = group
            if bundle is not None:
                self._bundles[worker] = bundle
        return worker

    def _stop(self, worker) -> None:
        """Kill a worker and free its placement group."""
        ray.kill(worker, no_restart=True)
        with self._lock:
            group = self._groups.pop(worker, None)
            if worker in self._bundles:
                self._free_bundles.append(self._bundles.pop(worker))
        if group is not None:
            remove_placement_group(group)

    def _check_capacity(self, total_workers: int) -> None:
        """Fail fast (instead of waiting forever) when the cluster cannot hold that many workers."""
        have = ray.cluster_resources()
        for resource, per_worker in self.resources.bundle().items():
            need = per_worker * total_workers
            if need > have.get(resource, 0.0) + 1e-9:
                raise ValueError(
                    f"{total_workers} scorer workers x {per_worker:g} {resource} need {need:g} {resource}, but the "
                    f"Ray cluster has {have.get(resource, 0.0):g}; use fewer workers or lower "
                    f"{resource.lower()}s_per_worker (fractions are allowed)"
                )

    def add_workers(self, n: int) -> None:
        """Start n more workers; each gets the current weights before it serves. Requests keep being served
        by the others while a worker loads."""
        self._check_capacity(self.num_workers + len(self._draining) + n)
        for _ in range(n):
            worker = self._start_worker()
            with self._lock:  # a load_weights since the start: catch up before joining
                if self._weights_ref is not None and ray.get(worker.version.remote()) != self._version:
                    ray.get(worker.load_weights.remote(self._weights_ref, self._version))
                self._workers.append(worker)

    def remove_workers(self, n: int) -> None:
        """Stop the n most recently added workers (at least one stays), draining them first: they get no new
        shards, and each stops once its shards in flight are answered (or after pool.drain_timeout_s, when
        what it still holds is resent to the others)."""
        with self._lock:
            if n >= len(self._workers):
                raise ValueError(f"cannot remove {n} of {len(self._workers)} workers: at least one must stay")
            removed = self._workers[len(self._workers) - n:]
            del self._workers[len(self._workers) - n:]
            self._draining.extend(removed)
        deadline = time.monotonic() + self.config.drain_timeout_s
        with self._idle:
            while any(self._in_flight[w] for w in removed) and time.monotonic() < deadline:
                self._idle.wait(deadline - time.monotonic())
            if any(self._in_flight[w] for w in removed):
                log.warning("scorer workers still busy after drain_timeout_s=%g: stopped anyway, their shards resent",
                            self.config.drain_timeout_s)
        for worker in removed:
            self._stop(worker)
            with self._lock:
                self._draining.remove(worker)

    def set_workers(self, n: int) -> int:
        """Grow or shrink the pool to n workers (removed ones drained first); returns the new count."""
        c = self.config
        if n < 1 or (c.autoscaled and not c.min_workers <= n <= c.max_workers):
            bounds = f"[{c.min_workers}, {c.max_workers}] (pool.min_workers/max_workers)" if c.autoscaled else ">= 1"
            raise ValueError(f"cannot set the scorer pool to {n} workers: the count must be in {bounds}")
        with self._resizing:
            before = self.num_workers
            if n > before:
                self.add_workers(n - before)
            elif n < before:
                self.remove_workers(before - n)
            if n != before:
                with self._lock:
                    self.resizes += 1
                log.info("scorer pool resized: %d -> %d workers", before, n)
        return self.num_workers

    def _observe(self) -> Observation:
        with self._lock:
            return Observation(time.monotonic(), len(self._workers), sum(self._in_flight[w] for w in self._workers))

    def _room(self) -> int:
        """Workers the cluster's free resources hold now."""
        return workers_that_fit(ray.available_resources(), self.resources.bundle())

    def stats(self) -> dict[str, Any]:
        """Workers, requests in / answers out / failed, shards in flight and queued, workers restarted and
        shards resent after a worker was lost, resizes,
        and per serving worker its shards in flight and answered."""
        with self._lock:
            obs = self._observe()
            return {"workers": obs.workers, "draining": len(self._draining), "requests_in": self.requests_in,
                    "answers_out": self.answers_out, "failed": self.failed,
                    "in_flight": sum(self._in_flight.values()), "queued": obs.queued, "restarts": self.restarts,
                    "resent": self.resent, "resizes": self.resizes, "min_workers": self.config.min_workers,
                    "max_workers": self.config.max_workers,
                    "per_worker": [{"in_flight": self._in_flight[w], "served": self._served[w]} for w in self._workers]}

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
    def _send(self, worker, method: str, payload: tuple[tuple, dict]) -> ray.ObjectRef:
        with self._lock:
            self._in_flight[worker] += 1
        args, kwargs = payload
        return getattr(worker, method).remote(*args, **kwargs)

    def _answered(self, worker) -> None:
        with self._idle:
            self._in_flight[worker] -= 1
            if not self._in_flight[worker]:
                del self._in_flight[worker]
            self._served[worker] += 1
            self._idle.notify_all()

    def _run(self, method: str, payloads: Sequence[tuple[tuple, dict]]) -> list[Any]:
        """Run payload k on worker k (mod N); resend a payload whose worker dies. Answers in payload order."""
        with self._lock:  # sent and counted at once: a worker being removed sees these shards in flight
            workers = list(self._workers)
            assigned = [workers[k % len(workers)] for k in range(len(payloads))]
            pending = {self._send(w, method, payload): k for k, (w, payload) in enumerate(zip(assigned, payloads))}
        answers: list[Any] = [None] * len(payloads)
        tries = [0] * len(payloads)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                ref = ready[0]
                k = pending.pop(ref)
                self._answered(assigned[k])
                try:
                    answers[k] = ray.get(ref)
                except _WORKER_LOST:
                    tries[k] += 1
                    if tries[k] > self.config.max_retries:
                        raise
                    with self._lock:
                        self.resent += 1
                        assigned[k] = self._replacement_for(assigned[k], k)
                        pending[self._send(assigned[k], method, payloads[k])] = k
        finally:
            for k in pending.values():  # left unanswered by a failed request: no longer counted
                self._answered(assigned[k])
        return answers

    @contextlib.contextmanager
    def _counted(self):
        """Counts one public request in, and its answer out (or its failure)."""
        with self._lock:
            self.requests_in += 1
        try:
            yield
        except BaseException:
            with self._lock:
                self.failed += 1
            raise
        with self._lock:
            self.answers_out += 1

    def score(self, contexts: Sequence[str], candidates: Sequence[Sequence[str]], *, mean: bool = False,
              with_hidden: bool = False, with_values: bool = False) -> ScoreResult:
        """Log-probs of every candidate, in request order, identical for any number of workers.

        (Bitwise identical on CPU, where every worker runs the same number of intra-op threads;
        BLAS rounding can depend on the thread count, so a bare backend matches at the same count.)
        """
        with self._counted():
            return self._score(contexts, candidates, mean=mean, with_hidden=with_hidden, with_values=with_values)

    def _score(self, contexts, candidates, *, mean: bool, with_hidden: bool, with_values: bool) -> ScoreResult:
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
        with self._counted():
            return self._hidden(contexts)

    def _hidden(self, contexts: Sequence[str]) -> torch.Tensor:
        validate_request(contexts, [["?"]] * len(contexts))
        shards = plan_shards([1] * len(contexts), self.num_workers)
        payloads = [(([contexts[i] for i in s.contexts],), {}) for s in shards]
        answers = self._run("hidden", payloads)
        return torch.stack(_per_context(shards, [list(a) for a in answers], len(contexts), _first))

    def generate(self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 32, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] = (), seed: int | None = None) -> GenerateResult:
        """n completions per prompt, prompts sharded over workers. Greedy output is identical for any N."""
        with self._counted():
            validate_generate_args(prompts, n, max_new_tokens, temperature, top_p)
            return self._generate(prompts, dict(n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                                top_p=top_p, stop=tuple(stop), seed=seed))

    def _generate(self, prompts: Sequence[str], kwargs: dict) -> GenerateResult:
        shards = plan_shards([1] * len(prompts), self.num_workers)
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
        if self._autoscaler is not None:
            self._autoscaler.stop()
        with self._lock:
            workers, self._workers = self._workers + self._draining, []
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
