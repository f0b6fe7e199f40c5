"""The transformers backend on the real bundled model: scores, hidden states, generation, weights."""
from __future__ import annotations

import pytest
import torch
from support import one_thread, scoring_requests

from policies.config import BackendConfig
from policies.scoring import naive_causal_scores
from policies.tokenization import ScoringInputError


def _max_diff(a, b):
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def test_scores_equal_naive_reference(backend):
    contexts, candidates = scoring_requests(n_babyai=15)
    assert len(contexts) >= 20 and all(2 <= len(c) <= 12 for c in candidates)
    got = backend.score(contexts, candidates)
    reference = naive_causal_scores(backend.model, backend.encode(contexts, candidates))
    assert [len(r) for r in got.logprobs] == [len(c) for c in candidates]
    assert _max_diff(got.logprobs, reference) < 1e-4
    assert all(v <= 0 for row in got.logprobs for v in row)
    assert got.versions == [0] * len(contexts)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_small_budgets_give_identical_scores(dtype, request):
    """Many small batches (both passes) give exactly the numbers of one big batch, in either precision, and a
    frozen copy (a scorer worker's, its matmul weights stored in bf16) the numbers of the trainable one."""
    from policies.transformers_backend import TransformersBackend

    backend = request.getfixturevalue("backend" if dtype == "float32" else "backend_bf16")
    contexts, candidates = scoring_requests(n_babyai=6)
    tight = TransformersBackend(BackendConfig(dtype=dtype, max_batch_tokens=64, max_cache_tokens=200))
    tight.freeze()
    with one_thread():
        assert tight.score(contexts, candidates).logprobs == backend.score(contexts, candidates).logprobs


def test_scores_do_not_depend_on_the_rest_of_the_request(backend):
    contexts, candidates = scoring_requests(n_babyai=10, seed=1)
    with one_thread():
        whole = backend.score(contexts, candidates).logprobs
        for size in (1, 3):
            for i in range(0, len(contexts), size):
                assert backend.score(contexts[i:i + size], candidates[i:i + size]).logprobs == whole[i:i + size]
        for i in range(3):
            half = len(candidates[i]) // 2
            assert backend.score(contexts[i:i + 1], [candidates[i][half:]]).logprobs[0] == whole[i][half:]


def test_mean_is_sum_over_token_count(backend):
    contexts, candidates = ["Action:"], [[" go forward", " go"]]
    sums = backend.score(contexts, candidates).logprobs[0]
    means = backend.score(contexts, candidates, mean=True).logprobs[0]
    counts = [len(ids) for ids in backend.encode(contexts, candidates).candidate_ids[0]]
    assert means == pytest.approx([s / n for s, n in zip(sums, counts)])


def test_candidate_tokens_do_not_depend_on_the_context(backend):
    request = backend.encode(["The cat sa", "Action:"], [["t", " go forward"], ["t", " go forward"]])
    assert request.candidate_ids[0] == request.candidate_ids[1]
    plain = backend.tokenizer("The cat sa", add_special_tokens=True)["input_ids"]
    assert request.context_ids[0] == plain


def test_hidden_is_last_context_token_state(backend):
    contexts = ["Goal: go to the red ball\nAction:", "Hello"]
    hidden = backend.hidden(contexts)
    assert hidden.shape == (2, backend.hf_model.config.hidden_size)
    ids = backend.tokenizer("Hello", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        direct = backend.hf_model.base_model(input_ids=ids).last_hidden_state[0, -1]
    assert torch.allclose(hidden[1], direct, atol=1e-4)
    assert torch.equal(backend.score(contexts, [["x"], ["y"]], with_hidden=True).hidden, hidden)


@pytest.mark.parametrize("contexts,candidates,fix", [
    (["ctx"], [[]], "empty candidate list"),
    ([""], [["a"]], "context 0 is empty"),
    (["ctx"], [["a", ""]], "non-empty strings"),
    (["a", "b"], [["x"]], "one list per context"),
    ("ctx", [["a"]], "wrap it"),
])
def test_bad_requests_name_the_problem(backend, contexts, candidates, fix):
    with pytest.raises(ScoringInputError, match=fix):
        backend.score(contexts, candidates)


def test_over_long_prompt_errors_or_left_truncates(backend):
    from policies.transformers_backend import TransformersBackend

    long_context = "go forward " * (backend.window // 2 + 10)
    with pytest.raises(ScoringInputError, match="model window of 8192.*truncation: left"):
        backend.score([long_context], [[" turn left"]])
    truncating = TransformersBackend(BackendConfig(truncation="left"))
    with pytest.warns(UserWarning, match="dropped its first"):
        request = truncating.encode([long_context], [[" turn left", " go"]])
    assert len(request.context_ids[0]) + 2 == truncating.window


def test_greedy_generation_is_deterministic_and_stops(backend):
    prompts = ["The capital of France is", "1, 2, 3, 4,"]
    first = backend.generate(prompts, max_new_tokens=8)
    assert first.texts == backend.generate(list(reversed(prompts)), max_new_tokens=8).texts[::-1]
    assert first.texts[1][0].startswith(" 5")
    stopped = backend.generate(prompts[1:], max_new_tokens=8, stop=[","])
    assert stopped.texts == [[" 5"]]


def test_sampling_is_seeded(backend):
    kwargs = dict(n=3, max_new_tokens=6, temperature=1.0, top_p=0.95)
    a = backend.generate(["Once upon a time"], seed=7, **kwargs)
    assert a.texts == backend.generate(["Once upon a time"], seed=7, **kwargs).texts
    assert len(a.texts[0]) == 3


def test_load_weights_changes_scores_and_version():
    from policies.transformers_backend import TransformersBackend

    source, target = TransformersBackend(BackendConfig()), TransformersBackend(BackendConfig())
    request = (["Goal: go to the red ball\nAction:"], [[" turn left", " go forward"]])
    before = target.score(*request).logprobs
    with torch.no_grad():
        for name, p in source.model.named_parameters():
            if "layers.3.mlp" in name:
                p.mul_(1.5)
    target.load_weights(source.get_weights(), version=4)
    after = target.score(*request)
    assert after.versions == [4]
    assert after.logprobs != before
    assert after.logprobs == source.score(*request).logprobs


def test_lora_weights_are_the_adapter_only():
    from policies.config import LoraConfig
    from policies.transformers_backend import TransformersBackend

    config = BackendConfig(lora=LoraConfig(r=4, target_modules=("q_proj", "v_proj")))
    source, target = TransformersBackend(config), TransformersBackend(config)
    weights = source.get_weights()
    assert weights and all("lora_" in k for k in weights)
    request = (["Goal: pick up the key\nAction:"], [[" pick up", " drop"]])
    base = target.score(*request).logprobs
    with torch.no_grad():
        for name, p in source.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    assert source.score(*request).logprobs != base  # lora_B starts at zero: the adapter now acts
    target.load_weights(source.get_weights(), version=1)
    assert target.score(*request).logprobs == source.score(*request).logprobs


def test_trainable_layers_train_and_sync_only_the_top_blocks():
    """trainable_layers=2: the top two blocks and the final norm need gradients (nothing below them gets one
    from a backward pass), get_weights carries only those, and another backend takes them."""
    from policies.llm_policy import LLMPolicy
    from policies.transformers_backend import TransformersBackend

    config = BackendConfig(dtype="float32", trainable_layers=2)
    source, target = LLMPolicy(config), TransformersBackend(config)
    blocks = len(source.backend.model.base_model.layers)
    trained = {n for n, p in source.backend.model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith((f"model.layers.{blocks - 2}.", f"model.layers.{blocks - 1}.", "model.norm."))
                           for n in trained)
    assert set(source.get_weights()) == {"llm." + n for n in trained}
    request = (["Goal: pick up the key\nAction:"], [[" pick up", " drop"]])
    pairs, _ = source.evaluate(source.encode(*request), with_values=False)
    pairs.sums.sum().backward()
    grads = {n for n, p in source.backend.model.named_parameters() if p.grad is not None}
    assert grads == trained
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.01 * p.grad)
    assert source.score(*request).logprobs != target.score(*request).logprobs
    target.load_weights(source.backend.get_weights(), version=3)
    assert target.score(*request).logprobs == source.score(*request).logprobs
    with pytest.raises(ValueError, match="trainable_layers=2"):
        target.load_weights(TransformersBackend(BackendConfig(dtype="float32")).get_weights(), version=4)


def test_lora_with_trainable_layers_adapts_only_the_top_blocks():
    from policies.config import LoraConfig
    from policies.transformers_backend import TransformersBackend

    backend = TransformersBackend(BackendConfig(lora=LoraConfig(r=4, target_modules=("q_proj",)), trainable_layers=3))
    blocks = len(backend.hf_model.base_model.layers)
    adapted = {k.split(".layers.")[1].split(".")[0] for k in backend.get_weights()}
    assert adapted == {str(i) for i in range(blocks - 3, blocks)}


@pytest.mark.parametrize("layers, message", [(10_000, "has 30 blocks"), (-1, "trainable_layers")])
def test_bad_trainable_layers_are_refused(layers, message):
    from cluster.config import ConfigError
    from policies.transformers_backend import TransformersBackend

    with pytest.raises((ValueError, ConfigError), match=message):
        TransformersBackend(BackendConfig(trainable_layers=layers))


BF16_MAX_ABS, BF16_MEAN_ABS, BF16_MAX_TV = 0.35, 0.06, 0.05
"""Stated bounds of mixed precision (bf16 compute) against float32 on the scoring set: summed log-prob per
candidate (nats), its mean, and the total variation between the two softmax policies over a context's candidates."""


def test_bf16_scores_stay_within_the_stated_bounds_of_float32(backend, backend_bf16):
    contexts, candidates = scoring_requests(n_babyai=15)
    fp32 = backend.score(contexts, candidates).logprobs
    bf16 = backend_bf16.score(contexts, candidates).logprobs
    diffs = [abs(a - b) for row32, row16 in zip(fp32, bf16) for a, b in zip(row32, row16)]
    tv = [0.5 * float((torch.tensor(a).softmax(0) - torch.tensor(b).softmax(0)).abs().sum()) for a, b in zip(fp32, bf16)]
    assert 0 < max(diffs) < BF16_MAX_ABS, max(diffs)  # > 0: the bf16 path really ran
    assert sum(diffs) / len(diffs) < BF16_MEAN_ABS
    assert max(tv) < BF16_MAX_TV, max(tv)


def test_generation_after_scoring_is_unchanged(backend):
    """Scoring's packed candidate pass leaves the model's attention and masks as plain sdpa for generation."""
    prompts = ["The capital of France is", "Q: 2+2?\nA:"]
    before = backend.generate(prompts, max_new_tokens=5).texts
    backend.score(["Action:"], [[" go forward", " turn left now", " toggle"]])
    assert backend.generate(prompts, max_new_tokens=5).texts == before
