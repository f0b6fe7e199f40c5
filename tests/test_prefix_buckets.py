"""Candidate-pass planning of the shared-prefix scorer as pure functions: step buckets and cache-budget chunks."""
from __future__ import annotations

from policies.prefix_scorer import _cache_budget_chunks, _Continuation, step_bucket


def test_step_bucket_is_the_next_power_of_two():
    assert [step_bucket(n) for n in range(1, 10)] == [1, 2, 4, 4, 8, 8, 8, 8, 16]
    assert all(step_bucket(n) >= n for n in range(1, 100))


def _item(slots: int, cand_len: int) -> _Continuation:
    return _Continuation(pair=0, cache=None, row=0, ctx_len=slots, slots=slots, cand=[1] * cand_len)


def test_chunks_keep_order_and_fit_the_budget():
    items = [_item(16, 3), _item(32, 2), _item(16, 9), _item(48, 5), _item(16, 2)]  # costs 18, 33, 24, 52, 17
    chunks = _cache_budget_chunks(items, 64)
    assert [x for c in chunks for x in c] == items
    assert [[x.cost for x in c] for c in chunks] == [[18, 33], [24], [52], [17]]
    assert _cache_budget_chunks([_item(64, 2)], 10) == [[_item(64, 2)]]  # over budget alone: its own chunk
    assert _cache_budget_chunks([], 10) == []
