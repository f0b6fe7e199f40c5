"""Scoring math: pair layout, log-prob gathering, reductions, batching plans, the naive reference."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

from policies.tokenization import EncodedRequest


MIN_ROWS = 16
"""CPU BLAS switches kernels (and rounding) for matmuls with very few rows; padding to this
many keeps a row's result independent of how many rows share its batch."""


def with_min_rows(fn, x: torch.Tensor) -> torch.Tensor:
    """fn(x) for a row-wise fn, computed on at least MIN_ROWS rows (zero rows added, then dropped)."""
    rows = x.shape[0]
    if rows >= MIN_ROWS:
        return fn(x)
    padding = x.new_zeros((MIN_ROWS - rows, *x.shape[1:]))
    return fn(torch.cat([x, padding]))[:rows]


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log P(target) under each row of logits, with a float32 log-softmax. logits [..., V], targets [...]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def reduce_pairs(sums: torch.Tensor, lengths: torch.Tensor, mean: bool) -> torch.Tensor:
    """Per-pair score: the summed token log-probs, or their per-token mean."""
    return sums / lengths.to(sums.dtype) if mean else sums


def split_pairs(flat: Sequence[float], counts: Sequence[int]) -> list[list[float]]:
    """Cut a flat per-pair list into one list per context (counts = candidates per context)."""
    out, start = [], 0
    for n in counts:
        out.append(list(flat[start:start + n]))
        start += n
    return out


def budget_batches(costs: Sequence[int], budget: int, padded: bool = True) -> Iterator[list[int]]:
    """Group indices in the given order into batches whose cost fits the budget: padded (size x max cost, for
    right-padded rows) or, with padded=False, summed (for packed rows).

    An item over budget alone still gets a batch of its own.
    """
    batch: list[int] = []
    widest = total = 0
    for i, cost in enumerate(costs):
        grown = max(widest, cost) * (len(batch) + 1) if padded else total + cost
        if batch and grown > budget:
            yield batch
            batch, widest, total = [], 0, 0
        batch.append(i)
        widest, total = max(widest, cost), total + cost
    if batch:
        yield batch


@torch.inference_mode()
def naive_causal_scores(model, request: EncodedRequest, batch_size: int = 16) -> list[list[float]]:
    """Reference: one full forward per (context + candidate), full-vocabulary log-softmax, summed.

    Right-padded batches of pairs; the slow baseline the shared-prefix scorer must equal.
    """
    device = next(model.parameters()).device
    pairs = [(ctx, cand) for ctx, cands in zip(request.context_ids, request.candidate_ids) for cand in cands]
    flat: list[float] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        seqs = [ctx + cand for ctx, cand in chunk]
        width = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), width, dtype=torch.long)
        mask = torch.zeros(len(seqs), width, dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        for row, (ctx, cand) in enumerate(chunk):
            positions = torch.arange(len(ctx) - 1, len(ctx) + len(cand) - 1, device=device)
            targets = torch.tensor(cand, device=device)
            flat.append(logp[row, positions, targets].sum().item())
    return split_pairs(flat, [len(c) for c in request.candidate_ids])


@torch.inference_mode()
def naive_seq2seq_scores(model, request: EncodedRequest) -> list[list[float]]:
    """Reference for encoder-decoder models: one full encoder+decoder pass per pair."""
    device = next(model.parameters()).device
    start_id = model.config.decoder_start_token_id
    flat: list[float] = []
    for ctx, cands in zip(request.context_ids, request.candidate_ids):
        for cand in cands:
            enc = torch.tensor([ctx], device=device)
            dec = torch.tensor([[start_id] + cand[:-1]], device=device)
            logits = model(input_ids=enc, decoder_input_ids=dec).logits[0]
            flat.append(token_logprobs(logits, torch.tensor(cand, device=device)).sum().item())
    return split_pairs(flat, [len(c) for c in request.candidate_ids])
