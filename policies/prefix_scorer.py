"""Shared-prefix scoring: each context runs through the model once, its candidates reuse it.

Causal models: contexts are right-padded and run with explicit position ids. Then the candidate
tokens (all but the last) of many pairs run as one packed row, so the Linear layers see many
rows; only attention is per group of pairs, each pair on its context's KV cache (see
_PairAttention). The LM head is applied only where a candidate token is predicted: at the
context's last position and at the candidate's own positions.

Encoder-decoder models: the encoder runs once per context; its output is gathered per pair
and the decoder runs on each candidate.

Both work with or without autograd, so the learner recomputes log-probs with the same code.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

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
    pending: list[_Continuation] = []  # pairs waiting for the candidate pass, across context batches
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
        # Remaining tokens: candidate[:-1] on the context's cache, packed with other batches' pairs.
        pending += [_Continuation(p, out.past_key_values, row_of[pairs[p][0]], ctx_lengths[pairs[p][0]], width,
                                  pairs[p][1]) for p in batch_pairs if len(pairs[p][1]) > 1]
        chunks = _cache_budget_chunks(pending, max_cache_tokens)
        for chunk in chunks[:-1]:
            sums = _add_continuations(sums, body, head, chunk, pad_id, dtype)
        pending = chunks[-1] if chunks else []
    if pending:
        sums = _add_continuations(sums, body, head, pending, pad_id, dtype)
    lengths = torch.tensor([len(cand) for _, cand in pairs], device=device)
    return PairScores(sums=sums, lengths=lengths, hidden=torch.stack(hidden) if want_hidden else None)


# ---- the candidate pass ---------------------------------------------------------------------------
def step_bucket(steps: int) -> int:
    """Query width of a pair's attention call: its candidate steps rounded up to a power of two, so that
    pairs of nearby lengths share a call while a pair's key layout still depends on its own length only."""
    return 1 << max(0, steps - 1).bit_length()


@dataclass
class _Continuation:
    """One pair's candidate pass: candidate[:-1] on row `row` of a context batch's KV cache."""

    pair: int
    cache: object  # the context batch's DynamicCache
    row: int
    ctx_len: int
    slots: int  # the context's slot width
    cand: list[int]

    @property
    def steps(self) -> int:
        return len(self.cand) - 1

    @property
    def cost(self) -> int:
        """Cache tokens its attention gathers."""
        return self.slots + step_bucket(self.steps)


def _cache_budget_chunks(items: list[_Continuation], budget: int) -> list[list[_Continuation]]:
    """Consecutive chunks whose summed cache cost fits the budget (an item over budget alone gets its own)."""
    return [[items[i] for i in batch] for batch in budget_batches([item.cost for item in items], budget, padded=False)]


class _PairAttention:
    """Attention for a packed row of candidate tokens: one call per group of pairs sharing (cache, slot width,
    step bucket). Each pair's queries see its context's `slots` cached keys, then its own step_bucket(steps)
    positions (causal, padding masked), so its kernels and key layout depend on the pair only."""

    def __init__(self, items: list[_Continuation], starts: list[int], device, dtype: torch.dtype):
        groups: dict[tuple[int, int, int], list[int]] = {}
        for k, c in enumerate(items):
            groups.setdefault((id(c.cache), c.slots, step_bucket(c.steps)), []).append(k)
        self.groups, self.calls = [], 0
        for (_, slots, width), members in groups.items():
            t = torch.arange(width, device=device)
            steps = torch.tensor([items[k].steps for k in members], device=device)
            valid = t[None, :] < steps[:, None]
            tokens = torch.where(valid, torch.tensor([starts[k] for k in members], device=device)[:, None] + t, 0)
            ctx_len = torch.tensor([items[k].ctx_len for k in members], device=device)
            ctx_allowed = (torch.arange(slots, device=device)[None, :] < ctx_len[:, None])[:, None, :]
            own_allowed = (t[None, :] <= t[:, None])[None] & valid[:, None, :]
            allowed = torch.cat([ctx_allowed.expand(-1, width, -1), own_allowed], dim=2)
            rows = torch.tensor([items[k].row for k in members], device=device)
            self.groups.append((items[members[0]].cache, rows, slots, tokens, valid, _additive_mask(allowed, dtype)))
        self.order = torch.cat([tokens[valid] for _, _, _, tokens, valid, _ in self.groups])

    def __call__(self, module, query, key, value, scaling):
        self.calls += 1
        q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))  # [tokens, heads, head_dim]
        outs = []
        for cache, rows, slots, tokens, valid, mask in self.groups:
            layer = cache.layers[module.layer_idx]
            keys = torch.cat([layer.keys[rows, :, :slots], k[tokens].transpose(1, 2)], dim=2)
            values = torch.cat([layer.values[rows, :, :slots], v[tokens].transpose(1, 2)], dim=2)
            out, _ = sdpa_attention_forward(module, q[tokens].transpose(1, 2), keys, values, mask, scaling=scaling,
                                            is_causal=False)  # [pairs, width, heads, head_dim]
            outs.append(out[valid])
        outs = torch.cat(outs)
        return outs.new_zeros((q.shape[0], *outs.shape[1:])).index_copy(0, self.order, outs).unsqueeze(0), None


PAIR_ATTENTION = "llmrl_prefix_pairs"
_ACTIVE: ContextVar[_PairAttention | None] = ContextVar(PAIR_ATTENTION, default=None)


def _attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """The registered attention function: the active _PairAttention, else plain sdpa."""
    active = _ACTIVE.get()
    if active is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    return active(module, query, key, value, scaling)


AttentionInterface.register(PAIR_ATTENTION, _attention)
AttentionMaskInterface.register(PAIR_ATTENTION, sdpa_mask)  # outside packed forwards it is sdpa: sdpa's masks


@contextlib.contextmanager
def _using(body, attention: _PairAttention):
    """Run `body` with `attention` for the duration. The model's config names the registered function from the
    first call on and keeps it: with no packed forward active in a thread it is plain sdpa, so forwards running
    meanwhile in other threads (which a config swapped back and forth would break) stay right."""
    body.config._attn_implementation = PAIR_ATTENTION
    token = _ACTIVE.set(attention)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _add_continuations(sums: torch.Tensor, body, head, items: list[_Continuation], pad_id: int,
                       dtype: torch.dtype) -> torch.Tensor:
    """sums + log P(cand[t] | context, cand[:t]) for t >= 1 of each item, all items in one packed forward."""
    device = sums.device
    starts, inputs, targets, positions = [], [], [], []
    for c in items:
        starts.append(len(inputs))
        inputs += c.cand[:-1]
        targets += c.cand[1:]
        positions += range(c.ctx_len, c.ctx_len + c.steps)
    real = len(inputs)
    filler = max(0, MIN_ROWS - real)  # unattended rows keep the Linear layers' rows >= MIN_ROWS
    attention = _PairAttention(items, starts, device, dtype)
    with _using(body, attention):
        hidden = body(input_ids=torch.tensor([inputs + [pad_id] * filler], device=device),
                      position_ids=torch.tensor([positions + [0] * filler], device=device),
                      use_cache=False).last_hidden_state[0, :real]
    if attention.calls == 0:
        raise RuntimeError(f"{type(body).__name__} does not call its config's attention function")
    logp = _head_logprobs(head, hidden, torch.tensor(targets, device=device))
    owner = torch.tensor([c.pair for c in items for _ in range(c.steps)], device=device)
    return sums.index_add(0, owner, logp)


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
