"""LLMPolicy: a backend plus an optional value head, served by scorer workers and trained by learners.

Scorers see `score` / `generate`; learners see the trainable interface: `encode`, `evaluate`,
`prior_scores` (the frozen pretrained LLM), `parameters`, `train`, `version` / `next_version`,
`get_weights` / `load_weights`."""
from __future__ import annotations

import copy
from typing import Mapping, Sequence

import torch

from policies.backend import GenerateResult, NoHiddenStatesError, ScoreResult, make_backend
from policies.config import BackendConfig
from policies.prefix_scorer import PairScores
from policies.tokenization import EncodedRequest
from policies.value_head import ValueHead, ValueHeadConfig

LLM_PREFIX, VALUE_PREFIX = "llm.", "value_head."


class LLMPolicy:
    """Scores candidates (and values, from the same forward) with versioned weights."""

    def __init__(self, backend: BackendConfig, value_head: ValueHeadConfig | None = None):
        if value_head is not None and backend.backend == "vllm":
            raise NoHiddenStatesError(backend.backend)
        self.backend = make_backend(backend)
        self.value_head = None
        if value_head is not None:
            size = self.backend.hf_model.config.get_text_config().hidden_size
            self.value_head = ValueHead(size, value_head).to(self.backend.device)
        self._prior = None
        """Full fine-tuning's frozen copy of the pretrained backend (`keep_prior`); None with LoRA."""

    @property
    def version(self) -> int:
        return self.backend.version

    def score(self, contexts: Sequence[str], candidates: Sequence[Sequence[str]], *, mean: bool = False,
              with_hidden: bool = False, with_values: bool = False) -> ScoreResult:
        """Candidate log-probs; with_values adds the value head's output on each context's hidden state."""
        if with_values and self.value_head is None:
            raise ValueError("with_values needs a value head: configure value_head for this policy")
        result = self.backend.score(contexts, candidates, mean=mean, with_hidden=with_hidden or with_values)
        if with_values:
            with torch.inference_mode():
                result.values = self.value_head(result.hidden.to(self.backend.device)).cpu().tolist()
        if not with_hidden:
            result.hidden = None
        return result

    def evaluate(self, request: EncodedRequest, with_values: bool = True) -> tuple[PairScores, torch.Tensor | None]:
        """Per-pair log-prob sums and per-context values, differentiable (for the learner)."""
        pairs = self.backend.pair_scores(request, want_hidden=with_values)
        return pairs, self.value_head(pairs.hidden) if with_values else None

    # ---- the trainable interface (what learners use) ---------------------------------------
    def encode(self, contexts: Sequence[str], candidates: Sequence[Sequence[str]]) -> EncodedRequest:
        """Token ids of a request under the tokenization rule, for `evaluate`."""
        return self.backend.encode(contexts, candidates)

    def prior_scores(self, request: EncodedRequest) -> PairScores:
        """Per-pair log-prob sums under the frozen pretrained LLM (the prior), without gradient. With LoRA:
        the base model with the adapter disabled (no second copy of the weights); without: the copy
        `keep_prior` made (always in evaluation mode; with LoRA dropout follows `train`: call it after train(False))."""
        with torch.no_grad():
            if self.backend.config.lora:
                with self.backend.model.disable_adapter():
                    return self.backend.pair_scores(request)
            if self._prior is None:
                raise ValueError("prior_scores without LoRA needs keep_prior() first (a frozen copy of the "
                                 "pretrained weights, taken before any update)")
            return self._prior.pair_scores(request)

    def keep_prior(self) -> None:
        """Full fine-tuning: keep a frozen copy of the weights as they are now (the pretrained model, version 0)
        for `prior_scores`; one more copy of the LLM's weights in memory (no gradients, no optimizer state).
        With LoRA nothing is copied: the prior is the base model under the adapter."""
        if self.backend.config.lora or self._prior is not None:
            return
        if self.version != 0:
            raise ValueError(f"keep_prior: the prior is the pretrained model, but these weights are version "
                             f"{self.version}; keep it before loading or training weights")
        self._prior = copy.deepcopy(self.backend)
        self._prior.model.eval()
        self._prior.freeze()

    def freeze(self) -> None:
        """Serve only (a scorer worker, an evaluation): nothing here is trained; weights still load."""
        self.backend.freeze()
        if self.value_head is not None:
            self.value_head.requires_grad_(False)

    def train(self, mode: bool = True) -> None:
        """Training mode (dropout on) or, with mode=False, evaluation mode."""
        self.backend.model.train(mode)
        if self.value_head is not None:
            self.value_head.train(mode)

    def next_version(self) -> int:
        """Stamp the weights as one version newer (after an optimizer update); returns the new version."""
        self.backend.version += 1
        return self.backend.version

    def hidden(self, contexts: Sequence[str]) -> torch.Tensor:
        return self.backend.hidden(contexts)

    def generate(self, prompts: Sequence[str], **kwargs) -> GenerateResult:
        return self.backend.generate(prompts, **kwargs)

    def parameters(self) -> list[torch.nn.Parameter]:
        """What a learner trains: the backend's trainable weights (the adapter with LoRA) and the value head."""
        params = [p for p in self.backend.model.parameters() if p.requires_grad]
        return params + (list(self.value_head.parameters()) if self.value_head is not None else [])

    def get_weights(self) -> dict[str, torch.Tensor]:
        weights = {LLM_PREFIX + k: v for k, v in self.backend.get_weights().items()}
        if self.value_head is not None:
            weights.update({VALUE_PREFIX + k: v.detach().cpu().clone() for k, v in self.value_head.state_dict().items()})
        return weights

    def load_weights(self, weights: Mapping[str, torch.Tensor], version: int) -> None:
        """Load `get_weights` output of an identically configured policy; value-head keys are optional."""
        llm = {k[len(LLM_PREFIX):]: v for k, v in weights.items() if k.startswith(LLM_PREFIX)}
        head = {k[len(VALUE_PREFIX):]: v for k, v in weights.items() if k.startswith(VALUE_PREFIX)}
        unknown = [k for k in weights if not k.startswith((LLM_PREFIX, VALUE_PREFIX))]
        if unknown:
            raise ValueError(f"weights keys must start with {LLM_PREFIX!r} or {VALUE_PREFIX!r}; got {unknown[:3]}")
        if head:
            if self.value_head is None:
                raise ValueError("weights carry a value head but this policy has none: configure value_head")
            self.value_head.load_state_dict(head)
        self.backend.load_weights(llm, version)
