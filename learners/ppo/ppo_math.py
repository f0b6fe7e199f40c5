"""PPO's pure math: GAE, clipped losses, normalization. Tensors in, tensors out."""
from __future__ import annotations

from dataclasses import dataclass

import torch


def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
        episode_end: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over time-major [T, ...] rollouts.

    next_values[t] is V of the observation after step t (for a truncated step: the final
    observation of the cut episode, so truncation bootstraps); terminated[t] zeroes that
    bootstrap; episode_end[t] (terminated or truncated) stops the advantage recursion.
    Returns (advantages, returns = advantages + values).
    """
    advantages = torch.zeros_like(rewards, dtype=torch.float32)
    running = torch.zeros_like(rewards[0], dtype=torch.float32)
    for t in range(rewards.shape[0] - 1, -1, -1):
        not_terminal = 1.0 - terminated[t].float()
        delta = rewards[t] + gamma * not_terminal * next_values[t] - values[t]
        running = delta + gamma * lam * (1.0 - episode_end[t].float()) * running
        advantages[t] = running
    return advantages, advantages + values


@dataclass
class PPOLoss:
    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor
    prior_kl: torch.Tensor | None = None
    """Mean of the per-state KL-to-prior term that entered `total` (None without one)."""


def ppo_loss(new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, new_values: torch.Tensor,
             old_values: torch.Tensor, returns: torch.Tensor, entropies: torch.Tensor, *, clip: float,
             value_clip: float | None, value_coef: float, entropy_coef: float,
             prior_kl: torch.Tensor | None = None, prior_coef: float = 0.0) -> PPOLoss:
    """Clipped surrogate policy loss + (clipped) squared value loss - entropy bonus, batch means; with
    `prior_kl` (a per-state KL to the prior, or its estimate) also + prior_coef * its mean."""
    log_ratio = new_logp - old_logp
    ratio = log_ratio.exp()
    policy = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)).mean()
    value_error = (new_values - returns) ** 2
    if value_clip is not None:
        clipped = old_values + (new_values - old_values).clamp(-value_clip, value_clip)
        value_error = torch.max(value_error, (clipped - returns) ** 2)
    value = 0.5 * value_error.mean()
    ent = entropies.mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clip_fraction = ((ratio - 1).abs() > clip).float().mean()
    total = policy + value_coef * value - entropy_coef * ent
    prior = None if prior_kl is None else prior_kl.mean()
    if prior is not None:
        total = total + prior_coef * prior
    return PPOLoss(total=total, policy=policy, value=value, entropy=ent, approx_kl=approx_kl,
                   clip_fraction=clip_fraction, prior_kl=prior)


def candidate_kl(log_p: torch.Tensor, log_q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(p || q) = sum_a p(a) (log p(a) - log q(a)) per row [B] over the candidates where mask [B, K] is True,
    from log-probs [B, K] (padding may hold -inf)."""
    return (log_p.exp() * (log_p - log_q).masked_fill(~mask, 0.0)).sum(-1)


def prior_kl(log_policy: torch.Tensor, log_prior: torch.Tensor, mask: torch.Tensor,
             direction: str = "reverse") -> torch.Tensor:
    """Exact KL per state [B] between the policy and the prior over finite candidate lists: reverse
    KL(pi || p_LLM) or forward KL(p_LLM || pi)."""
    if direction == "reverse":
        return candidate_kl(log_policy, log_prior, mask)
    if direction == "forward":
        return candidate_kl(log_prior, log_policy, mask)
    raise ValueError(f"direction {direction!r}: use 'reverse' or 'forward'")


def sampled_prior_kl(log_policy: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """The sampled forward-KL estimator per state [B]: -(1/k) sum_j log pi(c_j | s) over k candidates c_j
    drawn from the prior (indices [B, k] into log_policy [B, K]). Its expectation is KL(p_LLM || pi) + H(p_LLM),
    the forward KL up to a constant, so its gradient is the forward KL's; for free-form proposals."""
    return -log_policy.gather(1, samples.to(log_policy.device)).mean(1)


def normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero-mean, unit-std (population std); a single element becomes 0."""
    if x.numel() < 2:
        return torch.zeros_like(x)
    return (x - x.mean()) / (x.std(unbiased=False) + eps)
