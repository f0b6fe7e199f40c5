"""Hyperparameters of the ICPI agent (defaults: the reference's, sized for the bundled model)."""
from __future__ import annotations

from dataclasses import dataclass

from cluster.config import check_range


@dataclass(frozen=True)
class ICPIConfig:
    """How ICPI builds prompts, asks the LLM and estimates Q."""

    token_budget: int = 1500
    """Prompt tokens (examples + query), counted with the model's own tokenizer; oldest examples are dropped."""
    temperature: float = 0.1
    """Sampling temperature of generated predictions (0: greedy)."""
    max_new_tokens: int = 100
    """Upper bound on generated tokens; each prediction is also capped near its prompt's longest answer."""
    max_retries: int = 3
    """Invalid sampled output is retried with a reshuffled prompt this many times before the fallback."""
    rollouts_per_action: int = 1
    """Rollouts per action in the Q estimate (Q is their mean return)."""
    score_answer_sets: bool = False
    """Pick done, reward and action by scoring their answer sets instead of sampling and parsing."""
    answer_temperature: float = 0.0
    """With score_answer_sets: 0 takes the highest log-prob answer, > 0 samples softmax(logprob / T)."""
    sil: bool = True
    """Success buffer and next-state balancing use only episodes above the env's failure threshold."""
    success_buffer_size: int = 8
    """Episodes kept in the success buffer (most recent)."""
    min_successes: int = 3
    """Exploration schedule: p(use model) = 1 / (1 + exp(2 * (min_successes - |success buffer|)))."""
    argmax: bool = True
    """Act greedily on Q from rollouts; false: act from the policy prompt alone (the no-argmax baseline)."""
    lockstep: bool = True
    """Advance all rollouts together (one batched call per prediction type per depth); false: one at a time."""
    horizon: int | None = None
    """Rollout horizon; None: the env's."""

    def __post_init__(self):
        check_range(self, "token_budget", "max_new_tokens", "rollouts_per_action", "success_buffer_size", ge=1)
        check_range(self, "temperature", "answer_temperature", "max_retries", "min_successes", ge=0)
        check_range(self, "horizon", ge=1, none_ok=True)  # null: the env's
