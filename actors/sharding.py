"""Pure request sharding: split a scoring request over workers and stitch the answers back."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Shard:
    """Part of a request: some contexts, each with a slice [start, stop) of its candidates."""

    contexts: tuple[int, ...]
    slices: tuple[tuple[int, int], ...]


def plan_shards(candidate_counts: Sequence[int], num_workers: int, costs: Sequence[float] | None = None) -> list[Shard]:
    """At most `num_workers` shards covering every (context, candidate) pair exactly once.

    With at least as many contexts as workers, contexts are cut into contiguous groups of
    balanced cost; with fewer, each context's candidates are cut into chunks, giving
    contexts with more candidates more chunks.
    """
    n = len(candidate_counts)
    if num_workers < 1:
        raise ValueError("need at least one worker")
    if n == 0:
        return []
    costs = list(costs) if costs is not None else [float(c) for c in candidate_counts]
    if n >= num_workers:
        return [Shard(tuple(group), tuple((0, candidate_counts[i]) for i in group))
                for group in contiguous_groups(costs, num_workers)]
    chunks = chunks_per_context(candidate_counts, num_workers)
    shards = []
    for i, (count, k) in enumerate(zip(candidate_counts, chunks)):
        for start, stop in even_slices(count, k):
            shards.append(Shard((i,), ((start, stop),)))
    return shards


def contiguous_groups(costs: Sequence[float], k: int) -> list[list[int]]:
    """Cut indices 0..n-1 into k non-empty contiguous groups with near-equal total cost (n >= k)."""
    n = len(costs)
    total = sum(costs)
    groups, start, done = [], 0, 0.0
    for g in range(k):
        remaining_groups = k - g
        if remaining_groups == 1:
            groups.append(list(range(start, n)))
            break
        target = done + (total - done) / remaining_groups
        stop, acc = start + 1, done + costs[start]
        # grow while it brings us closer to the target and leaves one item per later group
        while stop < n - (remaining_groups - 1) and abs(acc + costs[stop] - target) <= abs(acc - target):
            acc += costs[stop]
            stop += 1
        groups.append(list(range(start, stop)))
        start, done = stop, acc
    return groups


def chunks_per_context(candidate_counts: Sequence[int], num_workers: int) -> list[int]:
    """How many candidate chunks each context gets: >= 1, <= its candidates, summing to <= num_workers."""
    chunks = [1] * len(candidate_counts)
    for _ in range(num_workers - len(candidate_counts)):
        # give the next worker to the context with the most candidates per chunk
        best = max(range(len(chunks)), key=lambda i: (candidate_counts[i] / chunks[i], -i))
        if chunks[best] >= candidate_counts[best]:
            break
        chunks[best] += 1
    return chunks


def even_slices(count: int, k: int) -> list[tuple[int, int]]:
    """Cut range(count) into k contiguous slices whose sizes differ by at most one."""
    base, extra = divmod(count, k)
    slices, start = [], 0
    for j in range(k):
        stop = start + base + (1 if j < extra else 0)
        slices.append((start, stop))
        start = stop
    return slices


def shard_request(shard: Shard, contexts: Sequence[str], candidates: Sequence[Sequence[str]]):
    """The (contexts, candidates) sub-request of a shard."""
    return ([contexts[i] for i in shard.contexts],
            [list(candidates[i][a:b]) for i, (a, b) in zip(shard.contexts, shard.slices)])


def merge_scores(shards: Sequence[Shard], answers: Sequence[list[list[float]]], candidate_counts: Sequence[int]):
    """Per-context score lists in request order from the shards' answers."""
    merged: list[list[float | None]] = [[None] * c for c in candidate_counts]
    for shard, answer in zip(shards, answers):
        for i, (a, b), scores in zip(shard.contexts, shard.slices, answer):
            if len(scores) != b - a:
                raise RuntimeError(f"a worker returned {len(scores)} scores for {b - a} candidates of context {i}")
            merged[i][a:b] = scores
    missing = [i for i, row in enumerate(merged) if any(v is None for v in row)]
    if missing:
        raise RuntimeError(f"no scores came back for contexts {missing[:10]}")
    return merged
