"""The one tokenization rule for scoring, used by every backend and by the reference.

Rule: a context is tokenized alone, with the tokenizer's usual special tokens; each
candidate is tokenized alone, without special tokens; the scored sequence is their
concatenation. A candidate's tokens therefore never depend on its context, all candidates
of a context share that context's tokens exactly (so its KV cache can be reused), and a
word split across the boundary is scored as the tokens of its two halves. Write candidates
with the separator the model should see (e.g. "Action: " + "go forward", or
"Action:" + " go forward"): the score is of exactly those characters.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence


class ScoringInputError(ValueError):
    """A scoring request is malformed; the message names the item and the fix."""


@dataclass(frozen=True)
class EncodedRequest:
    """Token ids of a scoring request under the rule above."""

    context_ids: list[list[int]]
    candidate_ids: list[list[list[int]]]

    @property
    def num_pairs(self) -> int:
        return sum(len(c) for c in self.candidate_ids)


def validate_request(contexts: Sequence[str], candidates: Sequence[Sequence[str]]) -> None:
    """Raise ScoringInputError unless every context is a non-empty string with a non-empty list of non-empty strings."""
    if isinstance(contexts, str):
        raise ScoringInputError("contexts must be a list of strings, got a single string; wrap it: [context]")
    if len(contexts) != len(candidates):
        raise ScoringInputError(
            f"got {len(contexts)} contexts but {len(candidates)} candidate lists; give one list per context"
        )
    for i, (context, cands) in enumerate(zip(contexts, candidates)):
        if not isinstance(context, str):
            raise ScoringInputError(f"context {i} is {type(context).__name__}, not a string")
        if not context:
            raise ScoringInputError(f"context {i} is empty; give the text the candidates are conditioned on")
        if isinstance(cands, str):
            raise ScoringInputError(f"candidates of context {i} must be a list of strings, got a single string")
        if len(cands) == 0:
            raise ScoringInputError(f"context {i} has an empty candidate list; give at least one candidate string")
        for j, cand in enumerate(cands):
            if not isinstance(cand, str) or not cand:
                raise ScoringInputError(f"candidate {j} of context {i} is {cand!r}; candidates must be non-empty strings")


def encode_request(
    tokenizer,
    contexts: Sequence[str],
    candidates: Sequence[Sequence[str]],
    window: int,
    truncation: str = "error",
    decoder_window: int | None = None,
) -> EncodedRequest:
    """Tokenize a request; enforce the model window on context + longest candidate.

    `window` bounds the context plus candidate (causal models); for encoder-decoder models
    pass the encoder's window and `decoder_window` to bound candidates separately.
    """
    validate_request(contexts, candidates)
    context_ids = tokenizer(list(contexts), add_special_tokens=True)["input_ids"]
    unique = sorted({c for cands in candidates for c in cands})
    unique_ids = dict(zip(unique, tokenizer(unique, add_special_tokens=False)["input_ids"]))
    candidate_ids = [[unique_ids[c] for c in cands] for cands in candidates]
    for i, cands in enumerate(candidate_ids):
        for j, ids in enumerate(cands):
            if not ids:
                raise ScoringInputError(f"candidate {j} of context {i} ({candidates[i][j]!r}) has no tokens")
            if decoder_window is not None and len(ids) > decoder_window:
                raise ScoringInputError(
                    f"candidate {j} of context {i} has {len(ids)} tokens; the decoder window is {decoder_window}"
                )
    for i, ctx in enumerate(context_ids):
        longest = 0 if decoder_window is not None else max(len(ids) for ids in candidate_ids[i])
        room = window - longest
        if len(ctx) <= room:
            continue
        if truncation != "left" or room < 1:
            raise ScoringInputError(
                f"context {i} has {len(ctx)} tokens and its longest candidate {longest}: "
                f"{len(ctx) + longest} > the model window of {window}; shorten the prompt "
                f"or set truncation: left to drop its oldest tokens"
            )
        warnings.warn(f"context {i}: dropped its first {len(ctx) - room} tokens to fit the window of {window}")
        context_ids[i] = ctx[len(ctx) - room:]
    return EncodedRequest(context_ids=context_ids, candidate_ids=candidate_ids)
