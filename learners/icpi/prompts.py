"""The four ICPI prompt builders, balancing, and front-clipping to a token budget (specs/icpi.md).

A builder returns examples (strings, each a few complete lines followed by an empty line) in a
random order drawn from `rng`; a prompt is the examples that fit the budget followed by a query.
"""
from __future__ import annotations

import itertools
from typing import Callable, Sequence, TypeVar

import numpy as np

from envs.icpi.base import IcpiEnv, TimeStep
from learners.icpi.buffers import EpisodeBuffers

T = TypeVar("T")
TokenCounter = Callable[[str], int]


# ---- balancing ----------------------------------------------------------------------------------
def repeat_to(items: Sequence[T], size: int, rng: np.random.Generator) -> list[T]:
    """`size` items drawn by cycling through a shuffled copy of `items` (each repeated as evenly as possible)."""
    order = list(items)
    rng.shuffle(order)
    return list(itertools.islice(itertools.cycle(order), size))


def balanced(groups: Sequence[Sequence[T]], rng: np.random.Generator) -> list[T]:
    """Every non-empty group repeated to the largest group's size, all mixed in a random order."""
    groups = [g for g in groups if len(g)]
    if not groups:
        return []
    size = max(len(g) for g in groups)
    mixed = [item for g in groups for item in repeat_to(g, size, rng)]
    rng.shuffle(mixed)
    return mixed


def group_by(steps: Sequence[TimeStep], key: Callable[[TimeStep], object]) -> list[list[TimeStep]]:
    """Steps grouped by `key`, groups in order of first appearance."""
    groups: dict[object, list[TimeStep]] = {}
    for ts in steps:
        groups.setdefault(key(ts), []).append(ts)
    return list(groups.values())


# ---- queries ------------------------------------------------------------------------------------
def world_query(env: IcpiEnv, state: str, action: int) -> str:
    """What the world model continues: the state line and the action line."""
    return state + env.action_str(action)


def policy_query(env: IcpiEnv, state: str) -> str:
    """What the policy continues: the initial line and the state line."""
    return env.initial_str + state


# ---- the four builders --------------------------------------------------------------------------
def done_examples(env: IcpiEnv, buffers: EpisodeBuffers, action: int, rng: np.random.Generator) -> list[str]:
    """`state action assert [not] done` for every step with `action`, done and not-done balanced."""
    steps = [ts for ts in buffers.steps() if ts.action == action]
    chosen = balanced(group_by(steps, lambda ts: ts.done), rng)
    return [world_query(env, ts.state, ts.action) + env.done_str(ts.done) + "\n" for ts in chosen]


def reward_examples(env: IcpiEnv, buffers: EpisodeBuffers, action: int, done: bool,
                    rng: np.random.Generator) -> list[str]:
    """`state action assert reward == k` for steps with `action` and `done`, balanced across rewards."""
    steps = [ts for ts in buffers.steps() if ts.action == action and ts.done == done]
    chosen = balanced(group_by(steps, lambda ts: ts.reward), rng)
    return [world_query(env, ts.state, ts.action) + env.reward_str(ts.reward) + "\n" for ts in chosen]


def next_state_examples(env: IcpiEnv, buffers: EpisodeBuffers, action: int, rng: np.random.Generator) -> list[str]:
    """`state action next_state` for non-terminal steps with `action`; with sil, steps of successful and
    unsuccessful episodes balanced."""
    def eligible(trajectories):
        return [ts for t in trajectories for ts in t if ts.action == action and not ts.done]

    if buffers.sil:
        outcome = [buffers.is_success(t) for t in buffers.replay]
        groups = [eligible(t for t, ok in zip(buffers.replay, outcome) if ok == wanted) for wanted in (True, False)]
        chosen = balanced(groups, rng)
    else:
        chosen = balanced([eligible(buffers.replay)], rng)
    return [world_query(env, ts.state, ts.action) + ts.next_state + "\n" for ts in chosen]


def policy_examples(env: IcpiEnv, buffers: EpisodeBuffers, rng: np.random.Generator) -> list[str]:
    """Every contiguous sub-trajectory of the success-buffer episodes (with sil: only successful ones),
    each written as the initial line and its steps, shuffled."""
    pieces = [t[start:stop] for t in buffers.successes
              for start, stop in itertools.combinations(range(len(t) + 1), 2)
              if buffers.is_success(t[start:stop])]
    examples = [env.initial_str + "".join(env.ts_to_string(ts) for ts in piece) + "\n" for piece in pieces]
    rng.shuffle(examples)
    return examples


# ---- clipping -----------------------------------------------------------------------------------
def clip_front(examples: Sequence[str], budget: int, count_tokens: TokenCounter, tail: str = "") -> list[str]:
    """The longest suffix of `examples` whose concatenation, followed by `tail`, has at most `budget` tokens."""
    kept: list[str] = []
    total = count_tokens(tail)
    for example in reversed(examples):  # per-example counts first (cheap), then the exact count
        total += count_tokens(example)
        if total > budget:
            break
        kept.append(example)
    kept.reverse()
    while kept and count_tokens("".join(kept) + tail) > budget:
        kept.pop(0)
    return kept
