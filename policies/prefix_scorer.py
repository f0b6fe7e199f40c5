"""Shared-prefix scoring: each context runs through the model once, its candidates reuse it.

Causal models: contexts are left-padded and run with explicit position ids; their KV cache
is gathered per (context, candidate) pair and only the candidate tokens (all but the last)
are run on top of it. The LM head is applied only where a candidate token is predicted:
at the context's last position and at the candidate's own positions.

Encoder-decoder models: the encoder runs once per context; its output is gathered per pair
and the decoder runs on each candidate.

Both work with or without autograd, so the learner recomputes log-probs with the same code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from policies.scoring import MIN_ROWS, budget_batches, token_logprobs, with_min_rows
from policies.tokenization import EncodedRequest


@dataclass
class PairScores:
    """Flat per-pair results in request order (context-major)."""

    sums: torch.Tensor  # [num_pairs] summed candidate-token log-probs (float32)
    lengths: torch.Tensor  # [num_pairs] candidate token counts
    hidden: torch.Tensor | None  # [num_contexts, H] hidden state for value heads, if asked


def _pair_layout(request: EncodedRequest) -> tuple[list[int], list[tuple[int, list[int]]]]:
    """Offsets of each context's first pair, and the flat (context, candidate ids) list."""
    offsets, pairs = [], []
    for i, cands in enumerate(request.candidate_ids):
        offsets.append(len(pairs))
        pairs.extend((i, cand) for cand in cands)
    return offsets, pairs


def _pad(rows: list[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, row in enumerate(rows):
        if not row:
            continue
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[k, span] = torch.tensor(row, dtype=torch.long)
        mask[k, span] = 1
    return ids, mask


def _by_length(lengths: list[int]) -> list[int]:
    return sorted(range(len(lengths)), key=lambda i: lengths[i])


SLOT = 16
"""Contexts occupy key slots rounded up to a multiple of SLOT and are batched only with
contexts of the same slot width: a context's key layout then depends on its own length
only, so its numbers do not depend on the rest of the request."""


def slot_width(length: int) -> int:
    return -(-length // SLOT) * SLOT


def _same_width_batches(ctx_lengths: list[int], budget: int) -> Iterator[tuple[int, list[int]]]:
    """Batches of contexts that share one slot width (GEMM rounding depends on the key length)."""
    by_width: dict[int, list[int]] = {}
    for i in _by_length(ctx_lengths):
        by_width.setdefault(slot_width(ctx_lengths[i]), []).append(i)
    for width, members in by_width.items():
        for batch in budget_batches([width] * len(members), budget):
            yield width, [members[k] for k in batch]


def _additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, Q, K] bool -> [B, 1, Q, K] additive mask (0 where allowed, dtype min elsewhere)."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min).unsqueeze(1)


def _head_logprobs(head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log P(targets) from the LM head on hidden rows (at least MIN_ROWS of them, for stable kernels)."""
    return token_logprobs(with_min_rows(head, hidden), targets)


def causal_pair_scores(
    body,
    head,
    request: EncodedRequest,
    *,
    max_batch_tokens: int,
    max_cache_tokens: int,
    pad_id: int,
    want_hidden: bool = False,
) -> PairScores:
    """Score all pairs of `request` with a decoder body (returns last_hidden_state + cache) and its LM head.

    Batches are right-padded and always given an explicit 4D mask, so every context and
    pair sees the same kernels and key layout whatever else shares its batch: the scores
    are identical however a request is split (e.g. by the scorer pool).
    """
    device = next(body.parameters()).device
    dtype = next(body.parameters()).dtype
    offsets, pairs = _pair_layout(request)
    sums = torch.zeros(len(pairs), dtype=torch.float32, device=device)
    hidden = [None] * len(request.context_ids)
    ctx_lengths = [len(c) for c in request.context_ids]
    for width, rows in _same_width_batches(ctx_lengths, max_batch_tokens):
        lengths = torch.tensor([ctx_lengths[i] for i in rows], device=device)
        ids, _ = _pad([request.context_ids[i] for i in rows], pad_id, left=False)
        ids = F.pad(ids, (0, width - ids.shape[1]), value=pad_id).to(device)
        keys = torch.arange(width, device=device)
        allowed = (keys[None, None, :] <= keys[None, :, None]) & (keys[None, None, :] < lengths[:, None, None])
        out = body(input_ids=ids, attention_mask=_additive_mask(allowed, dtype),
                   position_ids=keys.expand(len(rows), -1), use_cache=True)
        last = out.last_hidden_state[torch.arange(len(rows), device=device), lengths - 1]
        if want_hidden:
            for k, i in enumerate(rows):
                hidden[i] = last[k]
        # First candidate token: predicted from the context's last position.
        row_of = {i: k for k, i in enumerate(rows)}
        batch_pairs = [p for i in rows for p in range(offsets[i], offsets[i] + len(request.candidate_ids[i]))]
        pair_rows = torch.tensor([row_of[pairs[p][0]] for p in batch_pairs], device=device)
        first = torch.tensor([pairs[p][1][0] for p in batch_pairs], device=device)
        first_logp = _head_logprobs(head, last[pair_rows], first)
        sums = sums.index_add(0, torch.tensor(batch_pairs, device=device), first_logp)
        # Remaining tokens: run candidate[:-1] on the context's cache. A batch holds pairs of one
        # (context slot width, candidate length), so each pair's key layout is its own.
        groups: dict[tuple[int, int], list[int]] = {}
        for p in batch_pairs:
            if len(pairs[p][1]) > 1:
                groups.setdefault((slot_width(ctx_lengths[pairs[p][0]]), len(pairs[p][1])), []).append(p)
        for (slots, cand_len), group in sorted(groups.items()):
            for sub in budget_batches([slots + cand_len - 1] * len(group), max_cache_tokens):
                chosen = [group[k] for k in sub]
                cont = _continuation_logprobs(
                    body, head, out.past_key_values, slots, [row_of[pairs[p][0]] for p in chosen],
                    [ctx_lengths[pairs[p][0]] for p in chosen], [pairs[p][1] for p in chosen], pad_id, dtype)
                sums = sums.index_add(0, torch.tensor(chosen, device=device), cont)
    lengths = torch.tensor([len(cand) for _, cand in pairs], device=device)
    return PairScores(sums=sums, lengths=lengths, hidden=torch.stack(hidden) if want_hidden else None)


def _continuation_logprobs(body, head, cache, slots: int, rows: list[int], ctx_lengths: list[int],
                           cands: list[list[int]], pad_id: int, dtype: torch.dtype) -> torch.Tensor:
    """Sum of log P(cand[t] | context, cand[:t]) for t >= 1, for each pair, on the gathered context cache."""
    device = next(body.parameters()).device
    real = len(cands)
    filler = max(0, -(-MIN_ROWS // len(cands[0][:-1])) - real)  # copies of pair 0 keep rows >= MIN_ROWS
    rows, ctx_lengths, cands = rows + rows[:1] * filler, ctx_lengths + ctx_lengths[:1] * filler, cands + cands[:1] * filler
    index = torch.tensor(rows, device=device)
    inputs, in_mask = _pad([c[:-1] for c in cands], pad_id, left=False)
    targets, _ = _pad([c[1:] for c in cands], pad_id, left=False)
    inputs, in_mask, targets = inputs.to(device), in_mask.to(device).bool(), targets.to(device)
    steps = inputs.shape[1]
    pair_cache = DynamicCache(
        ddp_cache_data=[(layer.keys[index, :, :slots], layer.values[index, :, :slots]) for layer in cache.layers],
        config=body.config,
    )
    ctx_len = torch.tensor(ctx_lengths, device=device)
    t = torch.arange(steps, device=device)
    ctx_allowed = (torch.arange(slots, device=device)[None, :] < ctx_len[:, None])[:, None, :].expand(-1, steps, -1)
    own_allowed = (t[None, :] <= t[:, None])[None] & in_mask[:, None, :]
    allowed = torch.cat([ctx_allowed, own_allowed], dim=2)
    hidden = body(
        input_ids=inputs, attention_mask=_additive_mask(allowed, dtype), position_ids=ctx_len[:, None] + t,
        past_key_values=pair_cache, use_cache=True,
    ).last_hidden_state
    logp = _head_logprobs(head, hidden[in_mask], targets[in_mask])
    owner = torch.arange(len(cands), device=device).unsqueeze(1).expand_as(in_mask)[in_mask]
    return torch.zeros(len(cands), device=device).index_add(0, owner, logp)[:real]


def seq2seq_pair_scores(
    model,
    request: EncodedRequest,
    *,
    max_batch_tokens: int,
    max_cache_tokens: int,
    pad_id: int,
    want_hidden: bool = False,
) -> PairScores:
    """Score all pairs with an encoder-decoder model; hidden = decoder's first position (GLAM's value input).

    Equal to the naive reference within float tolerance; unlike the causal path it does not
    promise bitwise-identical numbers across different batch compositions.
    """
    device = next(model.parameters()).device
    encoder = model.get_encoder()
    start_id = model.config.decoder_start_token_id
    offsets, pairs = _pair_layout(request)
    sums = torch.zeros(len(pairs), dtype=torch.float32, device=device)
    hidden = [None] * len(request.context_ids)
    ctx_lengths = [len(c) for c in request.context_ids]
    order = _by_length(ctx_lengths)
    for batch in budget_batches([ctx_lengths[i] for i in order], max_batch_tokens):
        rows = [order[k] for k in batch]
        ids, mask = _pad([request.context_ids[i] for i in rows], pad_id, left=False)
        ids, mask = ids.to(device), mask.to(device)
        encoded = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        row_of = {i: k for k, i in enumerate(rows)}
        batch_pairs = [p for i in rows for p in range(offsets[i], offsets[i] + len(request.candidate_ids[i]))]
        batch_pairs.sort(key=lambda p: len(pairs[p][1]))
        width = ids.shape[1]
        for sub in budget_batches([width + len(pairs[p][1]) for p in batch_pairs], max_cache_tokens):
            chosen = [batch_pairs[k] for k in sub]
            index = torch.tensor([row_of[pairs[p][0]] for p in chosen], device=device)
            cands = [pairs[p][1] for p in chosen]
            dec_in, dec_mask = _pad([[start_id] + c[:-1] for c in cands], pad_id, left=False)
            targets, _ = _pad(cands, pad_id, left=False)
            dec_in, dec_mask, targets = dec_in.to(device), dec_mask.to(device), targets.to(device)
            out = model(
                encoder_outputs=(encoded.index_select(0, index),),
                attention_mask=mask.index_select(0, index),
                decoder_input_ids=dec_in,
                decoder_attention_mask=dec_mask,
                output_hidden_states=want_hidden,
                use_cache=False,
            )
            valid = dec_mask.bool()
            logp = token_logprobs(out.logits[valid], targets[valid])
            owner = torch.tensor(chosen, device=device).unsqueeze(1).expand_as(valid)[valid]
            sums = sums.index_add(0, owner, logp)
            if want_hidden:
                first = out.decoder_hidden_states[-1][:, 0]
                for k, p in enumerate(chosen):
                    hidden[pairs[p][0]] = first[k]
    lengths = torch.tensor([len(cand) for _, cand in pairs], device=device)
    return PairScores(sums=sums, lengths=lengths, hidden=torch.stack(hidden) if want_hidden else None)
