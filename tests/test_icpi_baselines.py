"""ICPI baselines: tabular Q (terminal steps do not bootstrap), random, the matching model; the agent factory."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from learners.icpi.agent import ICPIAgent
from learners.icpi.baselines import RandomAgent, TabularQAgent, make_agent
from learners.icpi.config import ICPIConfig

from icpi_fakes import TinyChain, step

ENV = TinyChain()
LEFT, GOAL, RIGHT = 0, 1, 2


def test_tabular_q_does_not_bootstrap_terminal_steps():
    agent = TabularQAgent(ENV, seed=0)
    agent.observe(step(2, GOAL, 1.0, True))
    agent.observe(step(0, GOAL, 0.0, True))
    np.testing.assert_allclose(agent.q[ENV.state_str(2)], [1.0, 1.0, 1.0])  # Q init 1; the target is r = 1
    np.testing.assert_allclose(agent.q[ENV.state_str(0)], [1.0, 0.0, 1.0])  # lr 1: Q = r, no gamma * max Q


def test_tabular_q_bootstraps_other_steps_and_time_limit_cuts():
    agent = TabularQAgent(ENV, seed=0)
    agent.observe(step(0, GOAL, 0.0, True))
    agent.observe(step(1, LEFT, 0.0, False, next_state=0))  # a time-limit cut is stored with done False
    assert agent.q[ENV.state_str(1)][LEFT] == pytest.approx(0.8 * 1.0)  # max Q(0) is still 1 (left, right)


def test_tabular_q_turns_greedy_with_successes():
    agent = TabularQAgent(ENV, seed=0)
    agent.q[ENV.state_str(2)][:] = [0.0, 1.0, 0.0]
    early = Counter(agent.act(ENV.state_str(2)) for _ in range(300))
    assert min(early.values()) > 60  # p(greedy) ~ 0.0025 with no successes
    for _ in range(8):
        agent.end_episode([step(2, GOAL, 1.0, True)])
    assert agent.num_successes == 8
    late = [agent.act(ENV.state_str(2)) for _ in range(100)]
    assert late.count(GOAL) >= 99 and agent.used_model


def test_tabular_q_counts_only_returns_above_the_threshold():
    agent = TabularQAgent(ENV, seed=0)
    agent.end_episode([step(0, GOAL, 0.0, True)])
    assert agent.num_successes == 0


def test_random_agent_is_uniform():
    agent = RandomAgent(ENV, seed=0)
    counts = Counter(agent.act("any") for _ in range(600))
    assert set(counts) == {0, 1, 2} and min(counts.values()) > 150 and not agent.used_model


def test_matching_agent_plans_with_the_latest_outcomes():
    """After the buffer holds the goal transition, the matching model's rollouts find it."""
    agent = make_agent("matching", ENV, ICPIConfig(min_successes=0), seed=0)
    assert isinstance(agent, ICPIAgent)
    agent.end_episode([step(2, LEFT, next_state=1), step(1, GOAL, 0.0, True)])
    agent.end_episode([step(1, LEFT, next_state=0), step(0, GOAL, 0.0, True)])
    agent.end_episode([step(1, RIGHT, next_state=2), step(2, GOAL, 1.0, True)])  # latest: try_goal at 2
    actions = []
    for _ in range(40):
        actions.append(agent.act(ENV.state_str(1)))
        if agent.used_model:
            np.testing.assert_allclose(agent.last_q, [0.0, 0.0, 0.8])  # right, then try_goal at 2
    assert RIGHT in actions and agent.used_model


def test_factory_errors_name_the_fix():
    with pytest.raises(ValueError, match="pass client="):
        make_agent("icpi", ENV, ICPIConfig(), seed=0)
    with pytest.raises(ValueError, match="choose one of"):
        make_agent("ppo", ENV, ICPIConfig(), seed=0)
