"""LLMPolicy: values from the scoring forward, the learner's differentiable path, weights with the value head."""
from __future__ import annotations

import pytest
import torch
from support import one_thread

from policies.config import BackendConfig, LoraConfig
from policies.llm_policy import LLMPolicy
from policies.value_head import ValueHead, ValueHeadConfig

CONTEXTS = ["Goal of the agent: go to the red ball\nAction 0:", "Goal of the agent: open the door\nAction 0:"]
CANDIDATES = [[" turn left", " go forward"], [" toggle", " drop", " pick up"]]


@pytest.fixture(scope="module")
def policy():
    return LLMPolicy(BackendConfig(lora=LoraConfig(r=4)), ValueHeadConfig(hidden_sizes=(32,)))


def test_value_head_shapes_and_seeded_init():
    a, b = ValueHead(8, ValueHeadConfig(hidden_sizes=(4, 4))), ValueHead(8, ValueHeadConfig(hidden_sizes=(4, 4)))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a(torch.randn(3, 8)).shape == (3,)


def test_values_come_from_the_scoring_forward(policy):
    result = policy.score(CONTEXTS, CANDIDATES, with_values=True)
    assert result.hidden is None and len(result.values) == 2
    hidden = policy.hidden(CONTEXTS)
    with torch.no_grad():
        assert result.values == pytest.approx(policy.value_head(hidden).tolist(), abs=1e-6)


def test_evaluate_is_differentiable_and_matches_score(policy):
    request = policy.backend.encode(CONTEXTS, CANDIDATES)
    pairs, values = policy.evaluate(request)
    flat = [v for row in policy.score(CONTEXTS, CANDIDATES).logprobs for v in row]
    assert pairs.sums.tolist() == pytest.approx(flat, abs=1e-4)
    (pairs.sums.sum() + values.sum()).backward()
    grads = [p.grad for p in policy.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    lora = [p for n, p in policy.backend.model.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in n for n, p in policy.backend.model.named_parameters() if p.requires_grad)
    policy.backend.model.zero_grad(set_to_none=True)
    policy.value_head.zero_grad(set_to_none=True)


def test_weights_round_trip_with_the_value_head(policy):
    other = LLMPolicy(BackendConfig(lora=LoraConfig(r=4)), ValueHeadConfig(hidden_sizes=(32,), seed=1))
    with torch.no_grad():
        for name, p in policy.backend.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    assert other.score(CONTEXTS, CANDIDATES, with_values=True).values != \
        policy.score(CONTEXTS, CANDIDATES, with_values=True).values
    other.load_weights(policy.get_weights(), version=3)
    mine, theirs = policy.score(CONTEXTS, CANDIDATES, with_values=True), other.score(CONTEXTS, CANDIDATES, with_values=True)
    assert theirs.logprobs == mine.logprobs and theirs.values == mine.values and other.version == 3


def test_bad_uses_are_named():
    bare = LLMPolicy(BackendConfig())
    with pytest.raises(ValueError, match="needs a value head"):
        bare.score(CONTEXTS, CANDIDATES, with_values=True)
    with pytest.raises(ValueError, match="must start with"):
        bare.load_weights({"model.x": torch.zeros(1)}, 1)


@pytest.mark.usefixtures("ray_cluster")
def test_pool_serves_values_equal_to_the_bare_policy():
    from actors.scorer_pool import PoolConfig, ScorerPool

    head = ValueHeadConfig(hidden_sizes=(16,))
    pool = ScorerPool(BackendConfig(), PoolConfig(num_workers=2), value_head=head)
    try:
        with one_thread():
            reference = LLMPolicy(BackendConfig(), head).score(CONTEXTS, CANDIDATES, with_values=True)
        got = pool.score(CONTEXTS, CANDIDATES, with_values=True)
        assert got.logprobs == reference.logprobs and got.values == reference.values
    finally:
        pool.shutdown()
