"""Pure scoring math on hand-made tensors."""
from __future__ import annotations

import math

import torch

from policies.generation import cut_at_stop
from policies.scoring import budget_batches, reduce_pairs, split_pairs, token_logprobs


def test_token_logprobs_is_a_real_log_softmax():
    logits = torch.tensor([[0.0, math.log(3.0)], [2.0, 2.0]])
    got = token_logprobs(logits, torch.tensor([1, 0]))
    assert torch.allclose(got, torch.tensor([math.log(0.75), math.log(0.5)]))


def test_reduce_pairs_sum_and_mean():
    sums, lengths = torch.tensor([-2.0, -3.0]), torch.tensor([1, 3])
    assert torch.equal(reduce_pairs(sums, lengths, mean=False), sums)
    assert torch.allclose(reduce_pairs(sums, lengths, mean=True), torch.tensor([-2.0, -1.0]))


def test_split_pairs():
    assert split_pairs([1, 2, 3, 4], [1, 3]) == [[1], [2, 3, 4]]


def test_budget_batches_respect_padded_cost():
    # [0, 1]: 2 x 2 = 4 <= 8; adding item 2 would cost 3 x 3 = 9; [2, 3] would cost 2 x 5 = 10
    assert list(budget_batches([2, 2, 3, 5], budget=8)) == [[0, 1], [2], [3]]
    assert list(budget_batches([10, 1], budget=8)) == [[0], [1]]  # over budget alone: still its own batch


def test_budget_batches_respect_summed_cost():
    assert list(budget_batches([1, 5], budget=8)) == [[0], [1]]  # padded: 2 x 5 = 10
    assert list(budget_batches([1, 5, 2, 3], budget=8, padded=False)) == [[0, 1, 2], [3]]  # 1 + 5 + 2 = 8
    assert list(budget_batches([10, 1], budget=8, padded=False)) == [[0], [1]]


def test_cut_at_stop_takes_the_earliest_stop():
    assert cut_at_stop("go left. then, right", [",", "."]) == "go left"
    assert cut_at_stop("no stop here", ["\n"]) == "no stop here"
