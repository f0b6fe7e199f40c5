"""Parts of the vLLM backend that import no vLLM at module level: prompt log-prob sums, weight checks,
LoRA merging, and the extension vLLM mixes into its workers to reload weights in place."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

PEFT_PREFIX = "base_model.model."


def candidate_logprob_sum(prompt_logprobs: Sequence, token_ids: Sequence[int], start: int) -> float:
    """Sum over k >= start of log P(token_ids[k] | token_ids[:k]), from vLLM's prompt log-probs
    (position k: a {token id: Logprob} mapping that holds token_ids[k]; position 0 is None)."""
    return sum(prompt_logprobs[k][token_ids[k]].logprob for k in range(start, len(token_ids)))


def checkpoint_weights(weights: Mapping[str, torch.Tensor], names: set[str], tied: set[str]) -> dict[str, torch.Tensor]:
    """`weights` restricted to the checkpoint's tensor `names` (detached, on CPU, contiguous: ready for
    safetensors), dropping `tied` copies such as lm_head.weight of tied embeddings.
    Raises ValueError naming missing or unknown keys."""
    missing, unknown = sorted(names - set(weights)), sorted(set(weights) - names - tied)
    if missing or unknown:
        raise ValueError(f"weights do not match the model: missing keys {missing[:5]} ({len(missing)}), unknown keys "
                         f"{unknown[:5]} ({len(unknown)}); pass get_weights() of a backend with the same model")
    return {k: weights[k].detach().cpu().contiguous() for k in names}


def merge_lora(base: Mapping[str, torch.Tensor], adapter: Mapping[str, torch.Tensor],
               scale: float) -> dict[str, torch.Tensor]:
    """`base` with each adapted weight W replaced by W + scale * B @ A, computed in float32.

    `adapter` holds peft's adapter state dict (get_peft_model_state_dict keys, e.g.
    base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight); scale is lora_alpha / r.
    """
    factors: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in adapter.items():
        module, sep, matrix = key.removeprefix(PEFT_PREFIX).rpartition(".lora_")
        if not sep or matrix not in ("A.weight", "B.weight"):
            raise ValueError(f"adapter key {key!r} is not a LoRA A or B matrix; pass a LoRA backend's get_weights()")
        factors.setdefault(module + ".weight", {})[matrix[0]] = value
    merged = dict(base)
    for name, ab in factors.items():
        if name not in base or set(ab) != {"A", "B"}:
            raise ValueError(f"adapter for {name!r}: the model has no such weight or the adapter lacks its A or B matrix")
        weight = base[name]
        merged[name] = (weight.float() + scale * (ab["B"].float() @ ab["A"].float())).to(weight.dtype)
    return merged


class WeightSync:
    """Mixed into every vLLM worker (LLM(worker_extension_cls=...)); called through llm.collective_rpc."""

    def llmrl_reload_weights(self, path: str) -> None:
        """Reload the model in place from the safetensors files in directory `path`."""
        from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding
        from vllm.platforms import current_platform

        self.reload_weights(weights_path=path)
        if current_platform.is_cpu():
            # vLLM-CPU keeps a packed oneDNN copy of each embedding matrix for its LM-head matmul. A head tied to
            # the input embeddings loads no tensor of its own, so reload_weights leaves its old copy: repack.
            for module in self.model_runner.get_model().modules():
                if isinstance(module, VocabParallelEmbedding):
                    module.quant_method.process_weights_after_loading(module)
