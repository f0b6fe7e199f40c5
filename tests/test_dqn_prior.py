"""DQN-Prior: posterior sampling and targets against hand computations, proposal matching and resampling,
the replay buffer, the Q learner with the real frozen encoder, and runs through the contract."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cluster.config import ConfigError
from cluster.experiment import Experiment
from cluster.methods import config_from_dict
from cluster.metrics import read_metrics
from learners.dqn_prior.posterior import dedupe, next_state_values, posterior_logits, sample_posterior, td_targets
from learners.dqn_prior.proposals import ExactPrior, ProposalSampler, match_action, top_k_prior
from learners.dqn_prior.replay import ReplayBuffer, Transition
from policies.backend import GenerateResult

ACTIONS = ["go left", "go down", "go right", "go up"]


def test_posterior_is_q_over_tau_plus_log_prior_by_hand():
    q, counts = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 3.0])
    logits = posterior_logits(q, counts, tau=0.5)
    assert torch.allclose(logits, torch.tensor([2 + math.log(0.25), math.log(0.75)], dtype=torch.float64))
    e1, e2 = 0.25 * math.exp(2), 0.75
    expected = e1 / (e1 + e2)  # p(first) = p_hat * exp(Q/tau), normalised
    rng = np.random.default_rng(0)
    draws = [sample_posterior(q, counts, 0.5, rng) for _ in range(20_000)]
    assert abs(draws.count(0) / len(draws) - expected) < 0.01
    assert sample_posterior(q, counts, 0.5, rng, greedy=True) == 0
    with pytest.raises(ValueError, match="tau must be > 0"):
        posterior_logits(q, counts, 0.0)


def test_dedupe_counts_proposals_in_first_seen_order():
    unique, counts = dedupe(["go up", "go left", "go up", "go up"])
    assert unique == ["go up", "go left"] and counts.tolist() == [3.0, 1.0]


def test_targets_max_double_dqn_and_terminal_by_hand():
    target = [torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0.5]), torch.zeros(0)]
    online = [torch.tensor([0.0, 0.0, 9.0]), torch.tensor([1.0]), torch.zeros(0)]
    assert next_state_values(target).tolist() == [3.0, 0.5, 0.0]
    assert next_state_values(target, online).tolist() == [2.0, 0.5, 0.0]  # target at the online argmax
    y = td_targets(torch.tensor([1.0, 0.0, 0.5]), torch.tensor([False, True, False]), torch.tensor([3.0, 9.0, 2.0]),
                   gamma=0.9)
    assert torch.allclose(y, torch.tensor([1 + 0.9 * 3, 0.0, 0.5 + 0.9 * 2]))


@pytest.mark.parametrize("text, expected", [
    (" go left", "go left"), ("Go Left.", "go left"), ("Action: go up\nmore", "go up"),  # exact
    ("go lft", "go left"),  # fuzzy
    (" Move down 4 steps.", "go down"),  # keywords
    ("[move left, move down", None), ("No.", None), ("", None), ("go", None),  # unmatched
])
def test_match_action(text, expected):
    assert match_action(text, ACTIONS) == expected


class ScriptedLLM:
    """generate() answers from a script, one list of texts per call; records the calls."""

    def __init__(self, script):
        self.script, self.calls = list(script), []

    def generate(self, prompts, n=1, **kwargs):
        self.calls.append((list(prompts), n))
        texts = self.script.pop(0)
        return GenerateResult(texts=[texts[:n] for _ in prompts], versions=[0] * len(prompts))


def test_proposals_resample_the_unmatched_cache_and_never_guess():
    llm = ScriptedLLM([["go up", "fly", "go up"], ["swim"], ["go left"]])
    sampler = ProposalSampler(llm, k=3, max_resamples=2)
    assert sampler.propose(["p"], [ACTIONS], seed=0) == [["go up", "go up", "go left"]]
    assert [n for _, n in llm.calls] == [3, 1, 1]  # only the missing proposals are asked again
    assert (sampler.stats.generated, sampler.stats.unmatched) == (5, 2)
    assert sampler.propose(["p"], [ACTIONS], seed=1) == [["go up", "go up", "go left"]]  # cached: no call
    assert sampler.stats.cache_hits == 1 and len(llm.calls) == 3
    nothing = ProposalSampler(ScriptedLLM([["x", "y"], ["z", "w"]]), k=2, max_resamples=1)
    assert nothing.propose(["q"], [ACTIONS], seed=0) == [ACTIONS]  # uniform prior, not an arbitrary command
    assert nothing.stats.no_match_states == 1 and nothing.stats.unmatched == 4


def test_replay_ring_buffer_and_its_state_round_trip():
    buffer = ReplayBuffer(capacity=3)
    for i in range(5):
        buffer.add(Transition(f"s{i}", "go up", float(i), f"s{i + 1}", i == 4, ("go up",) if i < 4 else ()))
    assert len(buffer) == 3 and sorted(t.reward for t in buffer.items) == [2.0, 3.0, 4.0]
    copy = ReplayBuffer(capacity=3)
    copy.load_state(buffer.state())
    assert copy.items == buffer.items and copy.next == buffer.next
    assert len(buffer.sample(10, np.random.default_rng(0))) == 10


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"proposals.k: 0 is not allowed; must be >= 1"):
        config_from_dict({"method": "dqn_prior", "proposals": {"k": 0}})
    with pytest.raises(ConfigError, match=r"dqn.batch_size: 0 is not allowed; must be >= 1"):
        config_from_dict({"method": "dqn_prior", "dqn": {"batch_size": 0}})
    with pytest.raises(ConfigError, match=r"dqn.prior: 'exact' is not allowed; only matters with dqn.use_prior"):
        config_from_dict({"method": "dqn_prior", "dqn": {"use_prior": False, "prior": "exact"}})
    with pytest.raises(ConfigError, match=r"dqn.tau: 0.0 is not allowed"):
        config_from_dict({"method": "dqn_prior", "dqn": {"tau": 0.0}})


def run_config(tmp_path, name, steps, **dqn):
    return config_from_dict({
        "method": "dqn_prior", "name": name, "use_ray": False, "env": {"id": "llmrl/FrozenLake4x4-v0"},
        "dqn": {"use_prior": False, "learning_starts": 16, "batch_size": 16, "updates_per_episode": 2, **dqn},
        "train": {"total_env_steps": steps, "output_dir": str(tmp_path), "checkpoint_every": 3}})


def test_q_learner_fits_a_fixed_batch_and_round_trips(tmp_path):
    from learners.dqn_prior.learner import QLearner
    from policies.text_encoder import TextEncoder

    config = run_config(tmp_path, "q", 10).dqn
    learner = QLearner(TextEncoder(), config)
    batch = [Transition("at the goal", "go up", 1.0, "end", True, ()),
             Transition("far away", "go down", 0.0, "end", True, ())]
    first = learner.update(batch)["loss_td"]
    for _ in range(200):
        last = learner.update(batch)["loss_td"]
    assert last < 0.1 * first
    learner.save(tmp_path)
    again = QLearner(TextEncoder(), config, seed=5)
    again.restore(tmp_path)
    assert torch.equal(again.q_values("at the goal", ACTIONS), learner.q_values("at the goal", ACTIONS))


def test_dqn_baseline_runs_and_resumes_exactly(tmp_path):
    whole = Experiment(run_config(tmp_path / "a", "dqn", 120), progress=False).run()
    part = Experiment(run_config(tmp_path / "b", "dqn", 50), progress=False).run()
    Experiment(run_config(tmp_path / "b", "dqn", 120), run_dir=part, progress=False).run()

    def figures(run_dir):
        return [{k: v for k, v in row.items() if k != "time_s"} for row in read_metrics(run_dir)]

    assert figures(part) == figures(whole) and figures(whole)[-1]["env_steps"] >= 120
    assert figures(whole)[-1]["updates"] > 0 and all(r["proposals_generated"] == 0 for r in figures(whole))


@pytest.mark.usefixtures("ray_cluster")
def test_dqn_prior_asks_the_real_llm_through_a_ray_pool(tmp_path):
    config = config_from_dict({
        "method": "dqn_prior", "name": "prior", "env": {"id": "llmrl/FrozenLake4x4-v0"},
        "pool": {"num_workers": 1, "cpus_per_worker": 0.5},
        "dqn": {"learning_starts": 8, "batch_size": 8, "updates_per_episode": 1},
        "proposals": {"k": 3, "max_resamples": 1},
        "train": {"total_env_steps": 12, "output_dir": str(tmp_path)}})
    rows = read_metrics(Experiment(config, progress=False).run())
    assert rows[0]["proposals_generated"] >= 3 and all(1 <= r["candidates"] <= 4 for r in rows)
    exact = config_from_dict({"method": "dqn_prior", "name": "exact", "env": {"id": "llmrl/FrozenLake4x4-v0"},
                              "pool": {"num_workers": 1, "cpus_per_worker": 0.5},
                              "dqn": {"prior": "exact", "learning_starts": 8, "batch_size": 8},
                              "train": {"total_env_steps": 8, "output_dir": str(tmp_path)}})
    rows = read_metrics(Experiment(exact, progress=False).run())
    assert all(r["candidates"] == 4.0 and r["proposals_generated"] == 0 for r in rows)


def test_top_k_prior_by_hand():
    actions, probs = top_k_prior(["a", "b", "c", "d"], [math.log(0.1), math.log(0.4), math.log(0.1), math.log(0.4)], 3)
    assert actions == ["a", "b", "d"]  # the top 3 in list order; the tie at 0.1 keeps the earlier "a"
    assert torch.allclose(probs, torch.tensor([0.1, 0.4, 0.4], dtype=torch.float64))
    every, probs = top_k_prior(["a", "b"], [0.0, 0.0])
    assert every == ["a", "b"] and torch.allclose(probs, torch.tensor([0.5, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="2 actions but 1 log-probs"):
        top_k_prior(["a", "b"], [0.0])


def test_exact_prior_scores_each_prompt_once():
    class Scorer:
        calls = []

        def score(self, contexts, candidates, **_):
            self.calls.append(list(contexts))
            return SimpleNamespace(logprobs=[[-float(len(c)) for c in cands] for cands in candidates])

    prior = ExactPrior(Scorer())
    assert prior.log_probs(["p", "q", "p"], [["ab", "c"], ["d"], ["ab", "c"]]) == [[-3.0, -2.0], [-2.0], [-3.0, -2.0]]
    assert prior.log_probs(["q"], [["d"]]) == [[-2.0]] and Scorer.calls == [["p", "q"]]  # " " + action scored
