"""GAE and PPO losses on hand-written batches, values checked by hand."""
from __future__ import annotations

import math

import pytest
import torch

from learners.ppo.ppo_math import gae, normalize, ppo_loss
from policies.action_distribution import candidate_log_policy, entropy


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_gae_single_env_episode_ending_by_termination():
    # 3 steps, terminated at the last one; gamma = 0.5, lambda = 1 -> discounted returns
    rewards, values = t([0.0], [0.0], [1.0]), t([0.1], [0.2], [0.3])
    next_values = t([0.2], [0.3], [9.0])  # 9.0 must be ignored: terminal
    terminated = t([0], [0], [1]).bool()
    adv, ret = gae(rewards, values, next_values, terminated, terminated, gamma=0.5, lam=1.0)
    assert ret.squeeze(1).tolist() == pytest.approx([0.25, 0.5, 1.0])
    assert adv.squeeze(1).tolist() == pytest.approx([0.15, 0.3, 0.7])


def test_gae_lambda_zero_is_one_step_td():
    rewards, values, next_values = t([1.0]), t([0.5]), t([2.0])
    no = t([0]).bool()
    adv, _ = gae(rewards, values, next_values, no, no, gamma=0.9, lam=0.0)
    assert adv.item() == pytest.approx(1.0 + 0.9 * 2.0 - 0.5)


def test_gae_truncation_bootstraps_but_stops_the_recursion():
    # step 0 truncated (next value = V(final obs) = 1.0); step 1 starts a new episode
    rewards, values = t([0.0], [1.0]), t([0.0], [0.0])
    next_values = t([1.0], [0.0])
    terminated = t([0], [1]).bool()
    ends = t([1], [1]).bool()
    adv, _ = gae(rewards, values, next_values, terminated, ends, gamma=0.5, lam=1.0)
    assert adv.squeeze(1).tolist() == pytest.approx([0.5, 1.0])  # step 0 gets 0.5*1.0, nothing from step 1


def test_gae_vectorized_envs_are_independent():
    rewards = t([1.0, 0.0], [0.0, 1.0])
    values = torch.zeros(2, 2)
    ends = t([1, 0], [0, 1]).bool()
    adv, _ = gae(rewards, values, torch.zeros(2, 2), ends, ends, gamma=1.0, lam=1.0)
    assert adv.tolist() == [[1.0, 1.0], [0.0, 1.0]]


def test_candidate_policy_masks_padding_and_entropy_is_log_k_when_uniform():
    scores = t([0.0, 0.0, 0.0], [math.log(3.0), 0.0, -5.0])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    logp = candidate_log_policy(scores, mask)
    assert logp[1].exp().tolist() == pytest.approx([0.75, 0.25, 0.0])
    ent = entropy(logp, mask)
    assert ent[0].item() == pytest.approx(math.log(3))
    assert ent[1].item() == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_temperature_divides_the_scores_and_sampling_uses_the_same_policy():
    import numpy as np

    from policies.action_distribution import sample_action

    scores, mask = t([math.log(0.7), math.log(0.2), math.log(0.1)]), torch.ones(1, 3, dtype=torch.bool)
    hot = candidate_log_policy(scores, mask, temperature=2.0)[0].exp()
    root = torch.tensor([0.7, 0.2, 0.1]).sqrt()
    assert hot.tolist() == pytest.approx((root / root.sum()).tolist())  # p^(1/2), renormalised
    rng = np.random.default_rng(0)
    draws = [sample_action(scores[0].tolist(), rng, temperature=2.0) for _ in range(4000)]
    assert [sum(a == k for a, _ in draws) / 4000 for k in range(3)] == pytest.approx(hot.tolist(), abs=0.03)
    assert all(logp == pytest.approx(math.log(hot[a])) for a, logp in draws[:20])
    assert sample_action(scores[0].tolist(), rng, greedy=True, temperature=5.0)[0] == 0
    with pytest.raises(ValueError, match="temperature must be > 0"):
        candidate_log_policy(scores, mask, temperature=0.0)


def test_ppo_loss_by_hand():
    new_logp = torch.log(t(0.6, 0.2))
    old_logp = torch.log(t(0.4, 0.4))  # ratios 1.5 and 0.5
    adv = t(1.0, -1.0)
    loss = ppo_loss(new_logp, old_logp, adv, new_values=t(1.0, 0.0), old_values=t(0.0, 0.0), returns=t(2.0, 0.0),
                    entropies=t(1.0, 0.5), clip=0.2, value_clip=0.5, value_coef=0.5, entropy_coef=0.1)
    # sample 0: max(-1.5, -1.2) = -1.2; sample 1: max(0.5, 0.8) = 0.8 -> mean -0.2
    assert loss.policy.item() == pytest.approx(-0.2)
    # value: sample 0 unclipped (1-2)^2 = 1, clipped (0.5-2)^2 = 2.25 -> 2.25; sample 1: 0 -> 0.5 * mean = 0.5625
    assert loss.value.item() == pytest.approx(0.5625)
    assert loss.entropy.item() == pytest.approx(0.75)
    assert loss.total.item() == pytest.approx(-0.2 + 0.5 * 0.5625 - 0.1 * 0.75, abs=1e-6)
    assert loss.clip_fraction.item() == pytest.approx(1.0)


def test_normalize():
    assert normalize(t(1.0, 3.0)).tolist() == pytest.approx([-1.0, 1.0])
    assert normalize(t(5.0)).tolist() == [0.0]


def test_kl_to_the_prior_by_hand_both_directions_with_padding():
    from learners.ppo.ppo_math import candidate_kl, prior_kl

    mask = torch.tensor([[True, True, False], [True, True, True]])
    log_policy = candidate_log_policy(torch.log(t([0.5, 0.5, 9.0], [0.25, 0.25, 0.5])), mask)
    log_prior = candidate_log_policy(torch.log(t([0.25, 0.75, 9.0], [0.25, 0.25, 0.5])), mask)
    # row 0: KL(pi || p) = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75); KL(p || pi) = 0.25 ln(0.25/0.5) + 0.75 ln(0.75/0.5)
    reverse = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    forward = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert prior_kl(log_policy, log_prior, mask, "reverse").tolist() == pytest.approx([reverse, 0.0], abs=1e-6)
    assert prior_kl(log_policy, log_prior, mask, "forward").tolist() == pytest.approx([forward, 0.0], abs=1e-6)
    assert candidate_kl(log_prior, log_policy, mask).tolist() == pytest.approx([forward, 0.0], abs=1e-6)
    with pytest.raises(ValueError, match="use 'reverse' or 'forward'"):
        prior_kl(log_policy, log_prior, mask, "sideways")


def test_kl_gradient_is_finite_and_zero_on_padding():
    from learners.ppo.ppo_math import prior_kl

    mask = torch.tensor([[True, True, False]])
    scores = t([0.3, -0.2, 0.0]).requires_grad_(True)
    log_prior = candidate_log_policy(t([0.0, 1.0, 0.0]), mask)
    for direction in ("reverse", "forward"):
        scores.grad = None
        prior_kl(candidate_log_policy(scores, mask), log_prior, mask, direction).sum().backward()
        assert torch.isfinite(scores.grad).all() and scores.grad[0, 2] == 0
        assert scores.grad[0, 0] > 0 > scores.grad[0, 1]  # toward the prior, which prefers candidate 1


def test_sampled_prior_kl_by_hand_and_its_mean_is_the_cross_entropy():
    from learners.ppo.ppo_math import prior_kl, sampled_prior_kl

    log_policy = torch.log(t([0.5, 0.25, 0.25]))
    # -(1/4) (ln 0.5 + ln 0.25 + ln 0.25 + ln 0.25) = (ln 2 + 6 ln 2) / 4
    samples = torch.tensor([[0, 1, 1, 2]])
    assert sampled_prior_kl(log_policy, samples).tolist() == pytest.approx([7 / 4 * math.log(2)])
    # samples in exact proportion to the prior: the estimate is KL(p || pi) + H(p), the forward KL up to a constant
    mask = torch.ones(1, 3, dtype=torch.bool)
    log_prior = torch.log(t([0.25, 0.5, 0.25]))
    estimate = sampled_prior_kl(log_policy, samples)
    exact = prior_kl(log_policy, log_prior, mask, "forward") + entropy(log_prior, mask)
    assert estimate.tolist() == pytest.approx(exact.tolist())


def test_ppo_loss_adds_the_weighted_prior_kl():
    args = (torch.log(t(0.6, 0.2)), torch.log(t(0.4, 0.4)), t(1.0, -1.0))
    kwargs = dict(new_values=t(1.0, 0.0), old_values=t(0.0, 0.0), returns=t(2.0, 0.0), entropies=t(1.0, 0.5), clip=0.2,
                  value_clip=0.5, value_coef=0.5, entropy_coef=0.1)
    plain = ppo_loss(*args, **kwargs)
    with_prior = ppo_loss(*args, **kwargs, prior_kl=t(0.2, 0.4), prior_coef=0.5)
    assert plain.prior_kl is None and with_prior.prior_kl.item() == pytest.approx(0.3)
    assert with_prior.total.item() == pytest.approx(plain.total.item() + 0.5 * 0.3)
    assert with_prior.policy.item() == plain.policy.item() and with_prior.value.item() == plain.value.item()
