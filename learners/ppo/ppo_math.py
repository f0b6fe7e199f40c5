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


def ppo_loss(new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, new_values: torch.Tensor,
             old_values: torch.Tensor, returns: torch.Tensor, entropies: torch.Tensor, *, clip: float,
             value_clip: float | None, value_coef: float, entropy_coef: float) -> PPOLoss:
    """Clipped surrogate policy loss + (clipped) squared value loss - entropy bonus, batch means."""
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
    return PPOLoss(total=policy + value_coef * value - entropy_coef * ent, policy=policy, value=value, entropy=ent,
                   approx_kl=approx_kl, clip_fraction=clip_fraction)


def normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero-mean, unit-std (population std); a single element becomes 0."""
    if x.numel() < 2:
        return torch.zeros_like(x)
    return (x - x.mean()) / (x.std(unbiased=False) + eps)
