"""The policy over text actions: a softmax over the candidates' scores. Env runners sample from it,
learners differentiate it; both use these functions, so behaviour and learner policies agree."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def candidate_log_policy(scores: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log pi over each row's candidates: log-softmax of scores [B, K] / temperature where mask [B, K] is True
    (else -inf); temperature 1 is GLAM's policy, above 1 flatter.

    Computed in float32 at least (float64 scores stay float64)."""
    if temperature <= 0:
        raise ValueError(f"the policy's temperature must be > 0, got {temperature}")
    dtype = torch.promote_types(scores.dtype, torch.float32)
    return torch.log_softmax((scores.to(dtype) / temperature).masked_fill(~mask, float("-inf")), dim=-1)


def entropy(log_policy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Entropy of each row's candidate distribution [B]."""
    p = log_policy.exp()
    return -(p * log_policy.masked_fill(~mask, 0.0)).sum(-1)


def sample_action(scores: Sequence[float], rng: np.random.Generator, greedy: bool = False,
                  temperature: float = 1.0) -> tuple[int, float]:
    """An action index drawn from softmax(scores / temperature) (greedy: the most likely), and its log-probability."""
    if not scores:
        raise ValueError("cannot pick an action from an empty candidate list; every state needs at least one action")
    row = torch.tensor([list(scores)], dtype=torch.float64)
    logp = candidate_log_policy(row, torch.ones_like(row, dtype=torch.bool), temperature)[0]
    if greedy:
        action = int(torch.argmax(logp))
    else:
        probs = logp.exp().numpy()
        action = int(rng.choice(len(scores), p=probs / probs.sum()))
    return action, float(logp[action])
