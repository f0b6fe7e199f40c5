"""Engine-independent pieces of generation: argument checks and stop-string cutting."""
from __future__ import annotations

import warnings
from typing import Sequence

from policies.tokenization import ScoringInputError


class GenerationInputError(ValueError):
    """A generation request is malformed; the message names the item and the fix."""


def validate_generate_args(prompts: Sequence[str], n: int, max_new_tokens: int, temperature: float, top_p: float) -> None:
    if isinstance(prompts, str):
        raise GenerationInputError("prompts must be a list of strings, got a single string; wrap it: [prompt]")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt:
            raise GenerationInputError(f"prompt {i} is {prompt!r}; prompts must be non-empty strings")
    if n < 1:
        raise GenerationInputError(f"n={n}: ask for at least one completion per prompt")
    if max_new_tokens < 1:
        raise GenerationInputError(f"max_new_tokens={max_new_tokens}: must be at least 1")
    if temperature < 0:
        raise GenerationInputError(f"temperature={temperature}: must be >= 0 (0 is greedy)")
    if not 0 < top_p <= 1:
        raise GenerationInputError(f"top_p={top_p}: must be in (0, 1]")


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text before the earliest occurrence of any stop string (the stop itself excluded)."""
    cut = len(text)
    for s in stop:
        at = text.find(s)
        if at != -1:
            cut = min(cut, at)
    return text[:cut]


def fit_prompt(i: int, ids: list[int], room: int, *, window: int, max_new_tokens: int, truncation: str) -> list[int]:
    """Prompt i's token ids if at most `room` long; else its last `room` tokens (truncation: left) or an error."""
    if len(ids) <= room:
        return ids
    if truncation != "left" or room < 1:
        raise ScoringInputError(
            f"prompt {i} has {len(ids)} tokens; with max_new_tokens={max_new_tokens} it exceeds the model window "
            f"of {window}; shorten the prompt or set truncation: left"
        )
    warnings.warn(f"prompt {i}: dropped its first {len(ids) - room} tokens to fit the window of {window}")
    return ids[len(ids) - room:]
