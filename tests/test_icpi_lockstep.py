"""Q by rollouts: lockstep batching gives the one-call-at-a-time Q values with fewer round trips;
invalid output is retried, counted and falls back; prompts are fixed per key within a step."""
from __future__ import annotations

import numpy as np
import pytest

from envs.icpi.base import TimeStep
from learners.icpi.buffers import EpisodeBuffers
from learners.icpi.client import CountingClient
from learners.icpi.config import ICPIConfig
from learners.icpi.lockstep import estimate_q
from learners.icpi.predictor import LLMPredictor, MatchingPredictor, Request

from icpi_fakes import FakeLLM, TinyChain, count_chars

ENV = TinyChain()


def random_buffers(episodes: int = 16, seed: int = 0, sil: bool = True) -> EpisodeBuffers:
    """Episodes of uniformly random actions on TinyChain."""
    env, rng = TinyChain(), np.random.default_rng(seed)
    buffers = EpisodeBuffers(env.gamma, env.failure_threshold, sil)
    for episode in range(episodes):
        state, _ = env.reset(seed=seed * 1000 + episode)
        trajectory = []
        while True:
            action = int(rng.integers(3))
            next_state, reward, terminated, truncated, _ = env.step(action)
            trajectory.append(TimeStep(state, action, reward, terminated, next_state))
            state = next_state
            if terminated or truncated:
                break
        buffers.add(trajectory)
    return buffers


def predictor(llm, config: ICPIConfig, buffers: EpisodeBuffers) -> LLMPredictor:
    return LLMPredictor(ENV, buffers, CountingClient(llm, count_chars), config, count_chars)


def q_and_stats(llm, config, buffers, state, step_seed, lockstep):
    p = predictor(llm, config, buffers)
    p.begin_step(step_seed)
    q = estimate_q(state, 3, p, ENV.gamma, ENV.horizon, config.rollouts_per_action, seed=step_seed, lockstep=lockstep)
    return q, p.client.stats


@pytest.mark.parametrize("score_answer_sets", [False, True])
@pytest.mark.parametrize("rollouts_per_action", [1, 3])
def test_lockstep_equals_one_call_at_a_time(score_answer_sets, rollouts_per_action):
    buffers = random_buffers()
    config = ICPIConfig(token_budget=400, score_answer_sets=score_answer_sets, rollouts_per_action=rollouts_per_action)
    llm = FakeLLM(garbage_every=5)  # some prompts answer garbage: retries and fallbacks are exercised too
    saw_invalid = False
    for k in range(8):
        state = ENV.state_str(k % 4)
        q_lock, lock = q_and_stats(llm, config, buffers, state, k, lockstep=True)
        q_seq, seq = q_and_stats(llm, config, buffers, state, k, lockstep=False)
        np.testing.assert_array_equal(q_lock, q_seq)
        assert (lock.calls, lock.prompt_tokens, lock.sampled, lock.invalid) == (
            seq.calls, seq.prompt_tokens, seq.sampled, seq.invalid)
        assert seq.round_trips == seq.calls  # one call at a time
        assert lock.round_trips <= 4 * ENV.horizon * (1 + config.max_retries)
        assert lock.round_trips < seq.round_trips
        saw_invalid |= lock.invalid > 0
    assert saw_invalid or score_answer_sets


def test_lockstep_round_trips_per_depth():
    """Without invalid output: at most one round trip per prediction type per depth (the last depth needs 2)."""
    config = ICPIConfig(token_budget=400)
    _, stats = q_and_stats(FakeLLM(), config, random_buffers(), ENV.state_str(1), 3, lockstep=True)
    assert stats.invalid == 0
    assert stats.round_trips <= 4 * (ENV.horizon - 1) + 2
    assert stats.calls >= stats.round_trips


def test_world_model_failure_ends_the_rollout_and_is_counted():
    config = ICPIConfig(token_budget=400, max_retries=2)
    q, stats = q_and_stats(FakeLLM(garbage_every=1), config, random_buffers(), ENV.state_str(0), 0, lockstep=True)
    np.testing.assert_array_equal(q, np.zeros(3))
    assert stats.sampled == stats.invalid == 3 * (1 + 2)  # the done predictions of 3 rollouts, 3 attempts each
    assert stats.round_trips == 3


class ScriptedPredictor:
    """Never done, reward 1, the state stays, the policy always fails; records the requests."""

    def __init__(self):
        self.requests: list[Request] = []

    def begin_step(self, seed):
        pass

    def predict(self, requests):
        self.requests += requests
        answers = {"done": False, "reward": 1.0, "action": None}
        return [r.state if r.kind == "state" else answers[r.kind] for r in requests]


def test_policy_failure_becomes_a_random_action():
    scripted = ScriptedPredictor()
    q = estimate_q(ENV.state_str(0), 3, scripted, 0.5, 3, seed=7)
    np.testing.assert_allclose(q, [1 + 0.5 + 0.25] * 3)
    later = [r.action for r in scripted.requests if r.kind == "done"][3:]  # depth 1 and 2 actions
    rngs = [np.random.default_rng([7, k]) for k in range(3)]
    expected_depth1 = [int(g.integers(3)) for g in rngs]
    assert later[:3] == expected_depth1


def test_prompts_fixed_within_a_step_and_reshuffled_on_retry():
    p = predictor(FakeLLM(), ICPIConfig(token_budget=10_000), random_buffers())
    request = Request("done", ENV.state_str(1), 0)
    p.begin_step(5)
    first = p.examples(request, 0)
    assert p.examples(Request("done", ENV.state_str(3), 0), 0) == first  # another query, the same prefix
    assert p.prompt(request, 0) == "".join(first) + ENV.state_str(1) + ENV.action_str(0)
    assert sorted(p.examples(request, 1)) == sorted(first) and p.examples(request, 1) != first
    p.begin_step(6)
    assert p.examples(request, 0) != first


def test_clipped_prompts_fit_the_budget():
    p = predictor(FakeLLM(), ICPIConfig(token_budget=200), random_buffers(episodes=40))
    p.begin_step(0)
    for kind in ("done", "reward", "state"):
        prompt = p.prompt(Request(kind, ENV.state_str(2), 2, done=False if kind == "reward" else None), 0)
        assert len(prompt) <= 200
    assert len(p.prompt(Request("action", ENV.state_str(2)), 0)) <= 200


def test_generation_is_capped_near_the_longest_answer():
    p = predictor(FakeLLM(), ICPIConfig(max_new_tokens=100), random_buffers())
    assert p.max_new_tokens("done") == len("assert not done\n") + 8
    assert p.max_new_tokens("state") == len(ENV.state_str(0)) + 8
    assert predictor(FakeLLM(), ICPIConfig(max_new_tokens=5), random_buffers()).max_new_tokens("state") == 5


def test_matching_predictor_returns_the_latest_outcome():
    buffers = EpisodeBuffers(ENV.gamma, 0.0, sil=True)
    s1, s2 = ENV.state_str(1), ENV.state_str(2)
    buffers.add([TimeStep(s1, 2, 0.0, False, s2), TimeStep(s2, 1, 1.0, True, s2)])
    buffers.add([TimeStep(s1, 2, 0.0, False, ENV.state_str(0))])  # a later, different outcome
    matching = MatchingPredictor(buffers)
    matching.begin_step(0)
    assert matching.predict([Request("state", s1, 2), Request("done", s2, 1), Request("reward", s2, 1, True)]) == [
        ENV.state_str(0), True, 1.0]
    assert matching.predict([Request("action", s2), Request("state", s1, 0)]) == [1, None]


def test_one_batch_holds_one_kind():
    p = predictor(FakeLLM(), ICPIConfig(), random_buffers())
    with pytest.raises(ValueError, match="one kind"):
        p.predict([Request("done", ENV.state_str(0), 0), Request("state", ENV.state_str(0), 0)])


@pytest.mark.slow
@pytest.mark.parametrize("score_answer_sets", [True, False])
def test_lockstep_agrees_with_one_call_at_a_time_on_the_real_model(backend, score_answer_sets):
    """Greedy, real bundled model: the batched (left-padded) calls give the answers of calls of one.

    Not bitwise: batched logits differ from single ones by ~1e-5, far below the top-2 gaps of these prompts.
    """
    from learners.icpi.client import token_counter

    count = token_counter(backend.tokenizer)
    config = ICPIConfig(token_budget=120, temperature=0.0, score_answer_sets=score_answer_sets, max_retries=1)
    buffers = random_buffers()
    q = {}
    for lockstep in (True, False):
        p = LLMPredictor(ENV, buffers, CountingClient(backend, count), config, count)
        p.begin_step(0)
        q[lockstep] = estimate_q(ENV.state_str(1), 3, p, ENV.gamma, 2, seed=0, lockstep=lockstep)
    np.testing.assert_allclose(q[True], q[False], atol=1e-9)
