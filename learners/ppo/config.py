"""PPO hyperparameters."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cluster.config import check_range, require


@dataclass(frozen=True)
class KLPriorConfig:
    """beta * KL between the policy and the frozen pretrained LLM (the prior p_LLM, the same softmax over the
    candidates' scores) added to PPO's loss ("GFlan-Prior", spec `specs/llm_priors.md`). beta 0: plain PPO,
    nothing computed.

    The prior's log-probs are computed once per batch: with LoRA by the base model with the adapter disabled
    (no second copy of the weights); with full fine-tuning by a frozen copy of the pretrained weights the
    learner keeps (one more copy of the LLM's weights in the learner's memory, no gradients or optimizer state)."""

    beta: float = 0.0
    """KL weight; 0 disables the term."""
    direction: Literal["reverse", "forward"] = "reverse"
    """reverse: KL(pi || p_LLM), sum_a pi(a) (log pi(a) - log p_LLM(a)); forward: KL(p_LLM || pi)."""
    estimator: Literal["exact", "sampled"] = "exact"
    """exact: the sum over each state's candidate list; sampled: -(1/k) sum_j log pi(c_j | s) over k candidates
    drawn from p_LLM once per batch (the forward KL up to the prior's entropy, a constant; what free-form
    proposals allow). The `kl_prior` metric is always the exact KL in `direction`."""
    samples: int = 5
    """k: candidates drawn from the prior per state for the sampled estimator."""

    def __post_init__(self):
        check_range(self, "beta", ge=0)
        check_range(self, "samples", ge=1)
        require(self.estimator == "exact" or self.direction == "forward", "estimator", self.estimator,
                "'sampled' estimates the forward KL: set direction: forward (or estimator: exact)")


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
    kl_prior: KLPriorConfig = field(default_factory=KLPriorConfig)
    """Pull toward the frozen LLM: + beta * KL(pi || p_LLM) in the loss (beta 0 by default: plain PPO)."""

    def __post_init__(self):
        check_range(self, "lr", "clip", "adam_eps", "max_grad_norm", gt=0)
        check_range(self, "value_clip", gt=0, none_ok=True)
        check_range(self, "gamma", gt=0, le=1)
        check_range(self, "gae_lambda", ge=0, le=1)
        require(len(self.betas) == 2, "betas", self.betas, "must be two numbers, e.g. [0.9, 0.999]")
        check_range(self, "betas", ge=0, lt=1)
        check_range(self, "entropy_coef", "value_coef", "max_policy_lag", ge=0)
        check_range(self, "epochs", "minibatch_size", "micro_batch_size", ge=1)
