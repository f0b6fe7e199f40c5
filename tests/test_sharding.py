"""Request sharding over workers: coverage, order, balance."""
from __future__ import annotations

import pytest

from actors.sharding import (chunks_per_context, contiguous_groups, even_slices, merge_scores, plan_shards,
                             shard_request)


def _covered(shards, counts):
    seen = [[0] * c for c in counts]
    for shard in shards:
        for i, (a, b) in zip(shard.contexts, shard.slices):
            for j in range(a, b):
                seen[i][j] += 1
    return all(v == 1 for row in seen for v in row)


@pytest.mark.parametrize("counts,workers", [
    ([6] * 32, 1), ([6] * 32, 2), ([6] * 32, 3), ([40] * 8, 3), ([3, 5], 3), ([6], 3), ([2], 5), ([1, 1], 4),
    ([12, 2, 7], 8),
])
def test_every_pair_exactly_once(counts, workers):
    shards = plan_shards(counts, workers)
    assert 1 <= len(shards) <= workers
    assert _covered(shards, counts)


def test_few_contexts_split_by_candidates():
    assert [s.slices for s in plan_shards([6], 3)] == [((0, 2),), ((2, 4),), ((4, 6),)]
    # the context with more candidates gets more chunks
    assert chunks_per_context([10, 2], 4) == [3, 1]
    assert chunks_per_context([1, 1], 4) == [1, 1]


def test_contiguous_groups_balance_cost():
    groups = contiguous_groups([1, 1, 1, 1, 4], 2)
    assert groups == [[0, 1, 2, 3], [4]]
    assert contiguous_groups([5, 1, 1, 1], 3) == [[0], [1, 2], [3]]
    assert [len(g) for g in contiguous_groups([1] * 10, 3)] == [3, 4, 3]


def test_even_slices():
    assert even_slices(7, 3) == [(0, 3), (3, 5), (5, 7)]


def test_merge_restores_request_order():
    contexts, candidates = ["a", "b"], [["x", "y", "z"], ["u"]]
    shards = plan_shards([3, 1], 3)
    answers = []
    for shard in shards:
        sub_contexts, sub_candidates = shard_request(shard, contexts, candidates)
        answers.append([[f"{c}|{k}" for k in cands] for c, cands in zip(sub_contexts, sub_candidates)])
    assert merge_scores(shards, answers, [3, 1]) == [["a|x", "a|y", "a|z"], ["b|u"]]


def test_merge_detects_missing_answers():
    shards = plan_shards([2, 2], 2)
    with pytest.raises(RuntimeError, match="returned 1 scores for 2"):
        merge_scores(shards, [[[0.0]], [[0.0, 0.0]]], [2, 2])
