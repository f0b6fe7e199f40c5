"""DQN-Prior's pure math: the posterior over proposed actions and the TD targets. Tensors in, tensors out."""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np
import torch


def dedupe(proposals: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    """The distinct proposals in first-seen order and how often each was proposed (p_hat_LLM up to 1/k)."""
    counts = Counter(proposals)
    unique = list(counts)
    return unique, torch.tensor([counts[a] for a in unique], dtype=torch.float64)


def posterior_logits(q: torch.Tensor, prior: torch.Tensor, tau: float) -> torch.Tensor:
    """log q(a|s) up to a constant: Q / tau + log p_LLM(a|s), p_LLM from proposal counts or exact scores
    (any positive weights: they are normalised here)."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    prior = prior.to(torch.float64)
    return q.to(torch.float64) / tau + torch.log(prior / prior.sum())


def sample_posterior(q: torch.Tensor, prior: torch.Tensor, tau: float, rng: np.random.Generator,
                     greedy: bool = False) -> int:
    """An index drawn from softmax(Q / tau + log p_LLM) (greedy: its argmax)."""
    logits = posterior_logits(q, prior, tau)
    if greedy:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits, dim=0).numpy()
    return int(rng.choice(len(probs), p=probs / probs.sum()))


def next_state_values(q_target: Sequence[torch.Tensor], q_online: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Per transition, the value of s' over its candidate actions: max of Q_target, or with Double DQN
    (q_online given) Q_target at the online network's argmax. An empty candidate set (a terminal s') is 0."""
    values = []
    for i, target in enumerate(q_target):
        if len(target) == 0:
            values.append(torch.zeros((), dtype=torch.float32))
        elif q_online is None:
            values.append(target.max())
        else:
            values.append(target[int(torch.argmax(q_online[i]))])
    return torch.stack(values) if values else torch.zeros(0)


def td_targets(rewards: torch.Tensor, terminated: torch.Tensor, next_values: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + gamma * (1 - terminated) * V(s'); a time-limit cut (not terminated) still bootstraps."""
    return rewards + gamma * (1.0 - terminated.float()) * next_values
