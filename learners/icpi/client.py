"""The LLM as ICPI sees it: score and generate (a backend or a ScorerPool), counted.

`CountingClient` records what the metrics report: prompts sent, sequential round trips,
prompt tokens, sampled outputs and how many of them were invalid.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable, Sequence

from policies.backend import GenerateResult, Scorer, ScoreResult


@dataclass
class LLMStats:
    """Running totals; subtract two snapshots for the cost of what happened in between."""

    calls: int = 0
    """Prompts sent (one per prediction attempt, as the reference counts API calls)."""
    round_trips: int = 0
    """Requests to the LLM, each waiting for the previous one (a batched request counts once)."""
    prompt_tokens: int = 0
    """Tokens of every prompt sent."""
    sampled: int = 0
    """Generated outputs that were parsed."""
    invalid: int = 0
    """Generated outputs that failed to parse."""

    def __sub__(self, other: LLMStats) -> LLMStats:
        return LLMStats(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in dataclasses.fields(self)})

    def snapshot(self) -> LLMStats:
        return dataclasses.replace(self)


class CountingClient:
    """Wraps a scorer and counts calls, round trips and prompt tokens into `stats`."""

    def __init__(self, client: Scorer, count_tokens: Callable[[str], int]):
        self.client = client
        self.count_tokens = count_tokens
        self.stats = LLMStats()

    def _count(self, prompts: Sequence[str]) -> None:
        self.stats.calls += len(prompts)
        self.stats.round_trips += 1
        self.stats.prompt_tokens += sum(self.count_tokens(p) for p in prompts)

    def score(self, contexts, candidates, *, mean: bool = False) -> ScoreResult:
        self._count(contexts)
        return self.client.score(contexts, candidates, mean=mean)

    def generate(self, prompts, **kwargs) -> GenerateResult:
        self._count(prompts)
        return self.client.generate(prompts, **kwargs)


def token_counter(tokenizer) -> Callable[[str], int]:
    """Counts a text's tokens with `tokenizer` (no special tokens); cached, since examples repeat."""
    @functools.lru_cache(maxsize=8192)
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def model_token_counter(model: str) -> Callable[[str], int]:
    """A token counter with the tokenizer of `model` (a bundled name, local directory or hub id)."""
    from transformers import AutoTokenizer

    from policies.models import resolve_model

    return token_counter(AutoTokenizer.from_pretrained(resolve_model(model)))
