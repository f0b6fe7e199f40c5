"""ICPI prompt builders on a hand-made buffer: filtering, balancing, clipping; the pure decision rules."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from learners.icpi.buffers import EpisodeBuffers, discounted_return
from learners.icpi.exploration import argmax_random_tie, is_ready, use_model_probability
from learners.icpi.prompts import (balanced, clip_front, done_examples, next_state_examples,
                                   policy_examples, policy_query, repeat_to, reward_examples, world_query)
from icpi_fakes import TinyChain, count_chars, step

ENV = TinyChain()
LEFT, GOAL, RIGHT = 0, 1, 2


def hand_made_buffers(sil: bool = True) -> EpisodeBuffers:
    """Three episodes: a success (right, then try_goal at 2), a failure (try_goal at 0), a time-limit cut."""
    buffers = EpisodeBuffers(ENV.gamma, ENV.failure_threshold, sil=sil)
    buffers.add([step(1, RIGHT, next_state=2), step(2, GOAL, 1.0, True)])
    buffers.add([step(0, GOAL, 0.0, True)])
    buffers.add([step(3, LEFT, next_state=2), step(2, LEFT, next_state=1), step(1, RIGHT, next_state=2)])
    return buffers


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_repeat_and_balance():
    assert Counter(repeat_to(["a", "b"], 5, rng())) in (Counter(a=3, b=2), Counter(a=2, b=3))
    mixed = balanced([["a"] * 3, ["b"], []], rng())
    assert Counter(mixed) == Counter(a=3, b=3)
    assert balanced([[], []], rng()) == []


def test_success_buffer_and_sil():
    buffers = hand_made_buffers(sil=True)
    assert len(buffers.replay) == 3 and len(buffers.successes) == 1
    assert discounted_return(buffers.successes[0], ENV.gamma) == pytest.approx(0.8)
    assert len(hand_made_buffers(sil=False).successes) == 3
    with pytest.raises(ValueError, match="empty episode"):
        buffers.add([])


def test_done_prompt_filters_by_action_and_balances_done():
    examples = done_examples(ENV, hand_made_buffers(), GOAL, rng())
    # try_goal was taken twice, both terminal: no not-done group to balance with
    assert sorted(examples) == sorted([world_query(ENV, ENV.state_str(s), GOAL) + "assert done\n\n" for s in (2, 0)])
    right = done_examples(ENV, hand_made_buffers(), RIGHT, rng())
    assert right == [world_query(ENV, ENV.state_str(1), RIGHT) + "assert not done\n\n"] * 2


def test_done_prompt_balances_by_repetition():
    buffers = EpisodeBuffers(ENV.gamma, 0.0, sil=True)
    buffers.add([step(0, LEFT), step(0, LEFT), step(1, LEFT), step(1, GOAL, 0.0, True)])
    buffers.add([step(3, LEFT, 0.0, True)])  # a (made-up) terminal left
    examples = done_examples(ENV, buffers, LEFT, rng())
    counts = Counter(e.endswith("assert done\n\n") for e in examples)
    assert counts[True] == counts[False] == 3


def test_reward_prompt_filters_by_action_and_done_and_balances_rewards():
    buffers = EpisodeBuffers(ENV.gamma, 0.0, sil=True)
    buffers.add([step(2, GOAL, 1.0, True)])
    for start in (0, 1, 3):
        buffers.add([step(start, GOAL, 0.0, True)])
    buffers.add([step(1, RIGHT, next_state=2), step(2, GOAL, 1.0, True)])
    examples = reward_examples(ENV, buffers, GOAL, True, rng())
    assert Counter(e.splitlines()[2] for e in examples) == Counter({"assert reward == 1": 3, "assert reward == 0": 3})
    assert reward_examples(ENV, buffers, GOAL, False, rng()) == []
    assert [e.splitlines()[1] for e in reward_examples(ENV, buffers, RIGHT, False, rng())] == ["state = right()"]


def test_next_state_prompt_skips_terminal_steps_and_balances_success():
    buffers = hand_made_buffers(sil=True)
    examples = next_state_examples(ENV, buffers, RIGHT, rng())
    # right from 1 happened once in the success and once in the cut episode (a failure): one each
    assert examples == [ENV.state_str(1) + ENV.action_str(RIGHT) + ENV.state_str(2) + "\n"] * 2
    assert next_state_examples(ENV, buffers, GOAL, rng()) == []
    lefts = next_state_examples(ENV, buffers, LEFT, rng())  # only in the failed episode: no balancing partner
    assert len(lefts) == 2


def test_policy_prompt_uses_successful_sub_trajectories():
    buffers = hand_made_buffers(sil=True)
    examples = policy_examples(ENV, buffers, rng())
    # the success (1 -right-> 2 -try_goal-> reward 1) has sub-trajectories [0:2] and [1:2] with return > 0
    assert len(examples) == 2
    assert all(e.startswith(ENV.initial_str) and e.endswith("assert done\n\n") for e in examples)
    assert len(policy_examples(ENV, hand_made_buffers(sil=False), rng())) == 3 + 1 + 6
    assert policy_query(ENV, ENV.state_str(1)) == ENV.initial_str + ENV.state_str(1)


def test_clip_front_keeps_the_longest_suffix_within_budget():
    examples = ["aaaa", "bb", "cccccc", "d"]
    assert clip_front(examples, 7, count_chars) == ["cccccc", "d"]
    assert clip_front(examples, 13, count_chars) == examples
    assert clip_front(examples, 0, count_chars) == []


def test_clip_front_leaves_room_for_the_tail():
    examples = ["aaaa", "bb", "cccccc", "d"]
    assert clip_front(examples, 13, count_chars, tail="qqqqqq") == ["cccccc", "d"]
    assert clip_front(examples, 5, count_chars, tail="qqqqqq") == []


def test_clip_with_the_models_tokenizer(backend):
    """Counted exactly on the joined text: a blank line before the query is 2 tokens, alone only 1."""
    from learners.icpi.client import token_counter

    count = token_counter(backend.tokenizer)
    examples = done_examples(ENV, hand_made_buffers(), RIGHT, rng()) * 20
    query = world_query(ENV, ENV.state_str(3), RIGHT)
    kept = clip_front(examples, 100, count, tail=query)
    assert kept and count("".join(kept) + query) <= 100
    assert count("".join(examples[-len(kept) - 1:]) + query) > 100


def test_use_model_probability():
    assert use_model_probability(3) == 0.5
    assert use_model_probability(0) == pytest.approx(1 / (1 + np.exp(6)))
    assert use_model_probability(8) > 0.9999


def test_readiness():
    assert is_ready({0, 1, 2}, 3, True, True)
    assert not is_ready({0, 2}, 3, True, True)
    assert not is_ready({0, 1, 2}, 3, False, True)
    assert not is_ready({0, 1, 2}, 3, True, False)


def test_argmax_breaks_ties_at_random():
    picks = Counter(argmax_random_tie(np.array([1.0, 0.5, 1.0]), rng(k)) for k in range(200))
    assert set(picks) == {0, 2} and min(picks.values()) > 60
