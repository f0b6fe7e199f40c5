"""Pure decision rules of ICPI: the exploration schedule, readiness, argmax with random ties."""
from __future__ import annotations

import math
from typing import Collection

import numpy as np


def use_model_probability(num_successes: int, min_successes: int = 3) -> float:
    """p = 1 / (1 + exp(2 * (min_successes - num_successes))): ~0 with no successes, 1/2 at min_successes."""
    return 1.0 / (1.0 + math.exp(2.0 * (min_successes - num_successes)))


def is_ready(actions_seen: Collection[int], num_actions: int, has_nonterminal_step: bool, has_success: bool) -> bool:
    """The model may act once every action has done and reward examples (it was taken at least once),
    some step has a next state (a non-terminal step) and the policy prompt is non-empty (a success)."""
    return set(range(num_actions)) <= set(actions_seen) and has_nonterminal_step and has_success


def argmax_random_tie(values: np.ndarray, rng: np.random.Generator) -> int:
    """Index of the largest value; ties broken uniformly at random."""
    values = np.asarray(values, dtype=float)
    return int(rng.choice(np.flatnonzero(values == values.max())))
