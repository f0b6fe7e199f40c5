"""PPO hyperparameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters (GLAM's in the comments)."""

    gamma: float = 0.99
    """Discount (GLAM 0.99)."""
    gae_lambda: float = 0.99
    """GAE lambda (GLAM 0.99)."""
    clip: float = 0.2
    """Policy ratio clip (GLAM 0.2)."""
    value_clip: float | None = 0.2
    """Value clip around the rollout's values (GLAM 0.2); null disables it."""
    entropy_coef: float = 0.01
    """Entropy bonus weight (GLAM 0.01)."""
    value_coef: float = 0.5
    """Value loss weight (GLAM 0.5)."""
    lr: float = 1e-6
    """Adam learning rate (GLAM 1e-6 for full fine-tuning; LoRA wants more, e.g. 1e-4)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas."""
    adam_eps: float = 1e-5
    """Adam epsilon (GLAM 1e-5)."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip (GLAM 0.5)."""
    epochs: int = 4
    """Passes over each batch of rollouts (GLAM 4)."""
    minibatch_size: int = 64
    """Steps per optimizer step (GLAM 64)."""
    micro_batch_size: int = 8
    """Steps per forward/backward inside a minibatch (gradient accumulation; bounds memory)."""
    normalize_advantages: bool = True
    """Normalize advantages per minibatch."""
    max_policy_lag: int = 1
    """Steps produced by a policy more than this many versions old count as stale."""
    drop_stale: bool = False
    """Drop stale steps instead of only counting them."""
    old_logprobs: Literal["rollout", "recompute"] = "rollout"
    """PPO's old log-probs: "rollout" takes those the scorer workers sampled with (the behaviour
    policy, exact also for lagged rollouts; no extra pass); "recompute" runs the learner's weights
    over the batch before the update (one more forward per step; for workers that score in a
    lower precision than the learner)."""
