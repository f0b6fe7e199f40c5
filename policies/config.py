"""Configuration of an LLM backend (one per scorer worker)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from cluster.config import check_range, require

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class LoraConfig:
    """A LoRA adapter (peft) trained instead of the full weights."""

    r: int = 8
    """Rank of the adapter matrices."""
    alpha: int = 16
    """Scaling numerator: the update is scaled by alpha / r."""
    dropout: float = 0.0
    """Dropout on the adapter's input while training."""
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Names of the linear layers that get adapters (T5: q, k, v, o)."""

    def __post_init__(self):
        check_range(self, "r", ge=1)
        check_range(self, "alpha", gt=0)
        check_range(self, "dropout", ge=0, lt=1)
        require(len(self.target_modules) > 0 and all(self.target_modules), "target_modules", self.target_modules,
                "list at least one module name, e.g. [q_proj, v_proj]")


@dataclass(frozen=True)
class VLLMConfig:
    """Engine settings of backend: vllm (ignored by the transformers backend)."""

    tensor_parallel_size: int = 1
    """Devices one engine shards the model over; on GPUs each scorer worker then reserves that many GPUs."""
    gpu_memory_utilization: float = 0.85
    """GPU: share of the GPU's memory for weights, activations and KV cache (ignored when kv_cache_gib is set)."""
    kv_cache_gib: float | None = None
    """KV-cache size in GiB; None: 1 GiB on CPU (vLLM would otherwise reserve gpu_memory_utilization of all RAM)."""
    enforce_eager: bool = True
    """Skip torch.compile and CUDA graphs: the engine starts in about 30 s instead of minutes; false on GPU for speed."""
    max_model_len: int | None = None
    """Longest prompt plus completion the engine accepts; None: the model's window."""

    def __post_init__(self):
        check_range(self, "tensor_parallel_size", ge=1)
        check_range(self, "gpu_memory_utilization", gt=0, le=1)
        check_range(self, "kv_cache_gib", gt=0, none_ok=True)
        check_range(self, "max_model_len", ge=1, none_ok=True)


@dataclass(frozen=True)
class BackendConfig:
    """Which model to load, where, and how to batch requests to it."""

    model: str = "smollm2-135m"
    """A bundled model name (smollm2-135m), a local transformers directory, or a hub id."""
    backend: Literal["transformers", "vllm"] = "transformers"
    """Inference engine of each scorer worker."""
    device: str = "auto"
    """'auto' (first GPU if any, else CPU), 'cpu', 'cuda' or 'cuda:N'."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Compute precision. 'auto': bfloat16 where the device has bf16 units (a CUDA GPU with bf16; a CPU with
    AMX or AVX512-BF16, read from /proc/cpuinfo and logged), else float32. Norms, the residual stream,
    value heads and log-softmax stay float32 (see fp32_weights). vLLM's 'auto': float32 on CPU, its own choice on GPU."""
    fp32_weights: bool = True
    """Below float32: keep float32 weights and compute under torch.autocast (mixed precision: a learner's
    master weights, and scorers whose numbers equal the learner's forward). false: store the weights in
    `dtype` (half the memory, for workers that only score or generate; numbers differ slightly)."""
    max_batch_tokens: int = 4096
    """Token budget of one forward pass over contexts (padded tokens count)."""
    max_cache_tokens: int = 32768
    """Budget of context-cache tokens replicated for one candidate pass (pairs x context length)."""
    truncation: Literal["error", "left"] = "error"
    """A context too long for the model window: 'error' raises, 'left' drops its oldest tokens with a warning."""
    lora: LoraConfig | None = None
    """Train a LoRA adapter instead of the full weights (None: full weights)."""
    trainable_layers: int = 0
    """Train only the top N transformer blocks and the final norm (with LoRA: adapters only there); 0: all.
    Backward passes stop at the lowest trained block and weight syncs carry only what trains: faster updates."""
    torch_threads: int = 0
    """Intra-op CPU threads of each process holding this backend (0: leave torch's default, which in a Ray actor
    is one per reserved CPU; -1: every core of the node, for a laptop where scorer and learner take turns)."""
    seed: int = 0
    """Seed for any randomly initialised part (LoRA init) and default generation seed."""
    vllm: VLLMConfig = VLLMConfig()
    """Engine settings of backend: vllm."""
    extra: dict = field(default_factory=dict)
    """Further engine keyword arguments, passed as they are (vLLM: any `vllm.LLM` argument)."""

    def __post_init__(self):
        require(bool(self.model), "model", self.model, "name a bundled model, a local directory or a hub id")
        require(bool(_DEVICE.fullmatch(self.device)), "device", self.device, "choose auto, cpu, cuda or cuda:N")
        check_range(self, "max_batch_tokens", "max_cache_tokens", ge=1)
        check_range(self, "trainable_layers", ge=0)
        check_range(self, "torch_threads", ge=-1)
