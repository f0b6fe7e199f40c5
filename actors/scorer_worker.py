"""ScorerWorker: one LLM backend with per-call timers; the pool runs it as a Ray actor."""
from __future__ import annotations

import os
import socket
import time
from collections import defaultdict
from typing import Mapping, Sequence

import ray
import torch

from policies.backend import GenerateResult, ScoreResult
from policies.config import BackendConfig
from policies.llm_policy import LLMPolicy
from policies.value_head import ValueHeadConfig


class ScorerWorker:
    """Serves score / generate / hidden from one LLM policy (backend + optional value head)."""

    def __init__(self, config: BackendConfig, value_head: ValueHeadConfig | None = None):
        self.policy = LLMPolicy(config, value_head)
        self.policy.freeze()
        self.timers: dict[str, float] = defaultdict(float)

    def _timed(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.timers[name] += time.perf_counter() - start

    def score(self, contexts: Sequence[str], candidates: Sequence[Sequence[str]], mean: bool = False,
              with_hidden: bool = False, with_values: bool = False) -> ScoreResult:
        return self._timed("score", self.policy.score, contexts, candidates, mean=mean, with_hidden=with_hidden,
                           with_values=with_values)

    def hidden(self, contexts: Sequence[str]) -> torch.Tensor:
        return self._timed("hidden", self.policy.hidden, contexts)

    def generate(self, prompts: Sequence[str], **kwargs) -> GenerateResult:
        return self._timed("generate", self.policy.generate, prompts, **kwargs)

    def get_weights(self) -> dict[str, torch.Tensor]:
        return self.policy.get_weights()

    def load_weights(self, weights: Mapping[str, torch.Tensor], version: int) -> int:
        self._timed("load_weights", self.policy.load_weights, weights, version)
        return self.policy.version

    def version(self) -> int:
        return self.policy.version

    def info(self) -> dict:
        """Where this worker runs and what it has spent its time on."""
        placement_group = ray.get_runtime_context().get_placement_group_id() if ray.is_initialized() else None
        return {"host": socket.gethostname(), "pid": os.getpid(), "version": self.policy.version,
                "placement_group": placement_group, "timers": dict(self.timers)}
