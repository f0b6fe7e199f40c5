"""Engine-independent pieces of generation: argument checks and stop-string cutting."""
from __future__ import annotations

from typing import Sequence


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
