"""The scorer pool on a real local Ray with real workers: exact answers, failures, scaling, weights."""
from __future__ import annotations

import threading
import time

import pytest
import ray
import torch
from support import one_thread, scoring_requests

from actors.scorer_pool import PoolConfig, ScorerPool, StoredWeights
from policies.config import BackendConfig
from policies.tokenization import ScoringInputError

pytestmark = pytest.mark.usefixtures("ray_cluster")


FP32 = BackendConfig(dtype="float32")


@pytest.fixture(scope="module")
def pool(ray_cluster):
    pool = ScorerPool(FP32, PoolConfig(num_workers=1))
    yield pool
    pool.shutdown()


def assert_pool_equals_bare_backend(pool, backend) -> None:
    """The pool's scores and hidden states equal the bare backend's, bit for bit, with 1, 2 and 3 workers."""
    contexts, candidates = scoring_requests(n_babyai=10, seed=1)
    with one_thread():
        reference = backend.score(contexts, candidates, with_hidden=True)
        one_context = backend.score(contexts[:1], candidates[:1]).logprobs
    for workers in (1, 2, 3):
        if pool.num_workers < workers:
            pool.add_workers(workers - pool.num_workers)
        assert pool.num_workers == workers
        got = pool.score(contexts, candidates, with_hidden=True)
        assert got.logprobs == reference.logprobs
        assert torch.equal(got.hidden, reference.hidden)
        assert pool.score(contexts[:1], candidates[:1]).logprobs == one_context  # split by candidates
    assert len({info["pid"] for info in pool.info()}) == 3


def test_pool_returns_the_bare_backend_numbers_for_1_2_3_workers(pool, backend):
    assert_pool_equals_bare_backend(pool, backend)


def test_in_bf16_the_pool_returns_the_bare_backend_numbers_for_1_2_3_workers(backend_bf16):
    """Mixed precision (bf16 compute over fp32 weights; frozen copies in the workers) keeps the guarantee."""
    pool = ScorerPool(BackendConfig(dtype="bfloat16"), PoolConfig(num_workers=1, cpus_per_worker=0.25))
    try:
        assert_pool_equals_bare_backend(pool, backend_bf16)
    finally:
        pool.shutdown()


def test_greedy_generation_through_the_pool(pool, backend):
    prompts = ["The capital of France is", "1, 2, 3,", "Hello, my name is", "Q: 2+2?\nA:"]
    assert pool.generate(prompts, max_new_tokens=6).texts == backend.generate(prompts, max_new_tokens=6).texts


def test_bad_input_is_reported_not_swallowed(pool, backend):
    with pytest.raises(ScoringInputError, match="empty candidate list"):
        pool.score(["ctx"], [[]])
    long_context = "go forward " * (backend.window // 2 + 10)
    with pytest.raises(ScoringInputError, match="model window"):
        pool.score([long_context, "ok"], [[" a"], [" b"]])


def test_a_pool_too_big_for_the_cluster_fails_fast():
    with pytest.raises(ValueError, match="need 1000 CPU.*fewer workers"):
        ScorerPool(BackendConfig(), PoolConfig(num_workers=1000))


def test_a_worker_killed_mid_request_is_restarted_and_its_shard_resent(pool, backend):
    assert pool.num_workers == 3
    contexts, candidates = scoring_requests(n_babyai=30, seed=2)
    with one_thread():
        reference = backend.score(contexts, candidates).logprobs
    restarts, victim = pool.restarts, pool.workers()[1]
    answer = {}
    request = threading.Thread(target=lambda: answer.update(result=pool.score(contexts, candidates)))
    request.start()
    time.sleep(1.5)  # the shards take several seconds: the victim is busy with its own
    assert request.is_alive()
    ray.kill(victim, no_restart=True)
    request.join()
    assert answer["result"].logprobs == reference
    assert pool.restarts == restarts + 1
    assert victim not in pool.workers() and pool.num_workers == 3


def test_weights_reach_every_worker_including_added_ones(pool):
    from policies.llm_policy import LLMPolicy

    pool.remove_workers(1)
    assert pool.num_workers == 2
    trained = LLMPolicy(FP32)
    with torch.no_grad():
        for name, p in trained.backend.model.named_parameters():
            if "layers.5.mlp" in name:
                p.mul_(1.3)
    pool.load_weights(trained.get_weights(), version=6)
    assert [info["version"] for info in pool.info()] == [6, 6]
    pool.load_weights(StoredWeights.put(trained.get_weights()), version=7)  # the learner's way: put once
    pool.add_workers(1)  # started after the update: must still get version 7
    assert [info["version"] for info in pool.info()] == [7, 7, 7]
    contexts, candidates = scoring_requests(n_babyai=6, seed=3)
    got = pool.score(contexts, candidates)
    assert got.versions == [7] * len(contexts)
    with one_thread():
        assert got.logprobs == trained.score(contexts, candidates).logprobs


def test_each_worker_holds_its_own_placement_group_freed_when_it_goes(pool):
    from ray.util import placement_group_table

    def created():
        return {pg for pg, info in placement_group_table().items() if info["state"] == "CREATED"}

    groups = [info["placement_group"] for info in pool.info()]
    assert None not in groups and len(set(groups)) == pool.num_workers
    assert set(groups) <= created()
    pool.add_workers(1)
    added = pool.info()[-1]["placement_group"]
    assert added in created() and added not in groups
    pool.remove_workers(1)
    assert added not in created()


def _clients(pool, contexts, candidates, n: int):
    """n threads scoring the same request over and over until the returned event is set; their answers."""
    stop, answers = threading.Event(), []

    def client():
        while not stop.is_set():
            answers.append(pool.score(contexts, candidates).logprobs)

    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    return stop, threads, answers


def _wait_for(condition, timeout: float = 120.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def test_a_worker_added_mid_run_serves_and_one_removed_mid_run_is_drained_first(backend):
    contexts, candidates = scoring_requests(n_babyai=3, seed=4)
    with one_thread():
        reference = backend.score(contexts, candidates).logprobs
    pool = ScorerPool(FP32, PoolConfig(num_workers=1, cpus_per_worker=0.25))
    try:
        stop, threads, answers = _clients(pool, contexts, candidates, 2)
        _wait_for(lambda: pool.stats()["answers_out"] >= 1)
        assert pool.set_workers(2) == 2  # joins while requests flow
        _wait_for(lambda: pool.stats()["per_worker"][1]["served"] >= 1)  # the new worker takes shards
        _wait_for(lambda: pool.stats()["per_worker"][1]["in_flight"] >= 1, every=0.005)
        assert pool.set_workers(1) == 1  # removed while it holds shards: they are answered, not resent
        assert pool.stats()["resent"] == 0
        stop.set()
        for t in threads:
            t.join()
        stats = pool.stats()
        assert stats["requests_in"] == stats["answers_out"] == len(answers) and stats["failed"] == 0
        assert stats["in_flight"] == 0 and stats["draining"] == 0 and stats["resent"] == 0
        assert stats["resizes"] == 2 and stats["workers"] == 1
        assert all(a == reference for a in answers)
    finally:
        pool.shutdown()


def test_the_autoscaler_grows_under_a_queue_and_shrinks_when_idle(backend):
    contexts, candidates = scoring_requests(n_babyai=4, seed=5)
    pool = ScorerPool(FP32, PoolConfig(num_workers=1, cpus_per_worker=0.25, min_workers=1, max_workers=2,
                                                  scale_up_queue=1.0, scale_up_after_s=0.5, scale_down_idle_s=1.0,
                                                  check_interval_s=0.1))
    try:
        stop, threads, answers = _clients(pool, contexts, candidates, 3)  # 3 requests on 1 worker: 2 queued
        _wait_for(lambda: pool.num_workers == 2)
        time.sleep(2.0)
        assert pool.num_workers == 2  # never past max_workers
        stop.set()
        for t in threads:
            t.join()
        # idle: back to min_workers (the resize is counted once set_workers returns, just after the count drops)
        _wait_for(lambda: pool.num_workers == 1 and pool.stats()["resizes"] == 2)
        stats = pool.stats()
        assert stats["resizes"] == 2 and stats["requests_in"] == stats["answers_out"] == len(answers)
        with pytest.raises(ValueError, match=r"in \[1, 2\]"):
            pool.set_workers(3)
    finally:
        pool.shutdown()
