"""Test support: seeded scoring requests shaped like real ones (BabyAI-Text prompts) plus boundary cases."""
from __future__ import annotations

import contextlib
import random

import torch

ACTIONS = ["turn left", "turn right", "go forward", "pick up", "drop", "toggle"]
COLORS = ["red", "green", "blue", "purple", "yellow", "grey"]
OBJECTS = ["ball", "box", "key"]


def babyai_prompt(rng: random.Random) -> str:
    goal = f"go to the {rng.choice(COLORS)} {rng.choice(OBJECTS)}"
    lines = [f"Possible action of the agent: {', '.join(ACTIONS)}", f"Goal of the agent: {goal}"]
    steps = rng.randint(1, 3)
    for t in range(steps):
        seen = [f"You see a wall {rng.randint(1, 4)} steps forward"]
        for _ in range(rng.randint(0, 3)):
            seen.append(f"You see a {rng.choice(COLORS)} {rng.choice(OBJECTS)} {rng.randint(1, 3)} steps left "
                        f"and {rng.randint(1, 5)} steps forward")
        lines.append(f"Observation {t}: {', '.join(seen)}")
        lines.append(f"Action {t}:" + (f" {rng.choice(ACTIONS)}" if t < steps - 1 else ""))
    return "\n".join(lines)


# Boundary cases of the tokenization rule: leading space or not, punctuation, a word split
# across the boundary, candidates sharing prefixes, multi-token candidates.
BOUNDARY = [
    ("The cat sa", ["t", "t on the mat", " sat", "id", "ys hello"]),
    ("Action:", ["go forward", " go forward", " go", ":", "!", " go forward now"]),
    ("Hello, world", ["!", ".", "!!", " again", "ly"]),
    ("Q: 2+2=?\nA:", [" 4", "4", " four", " 22", "\n4"]),
    ("unbeliev", ["able", "ably", " able", "ability"]),
]


def scoring_requests(n_babyai: int = 18, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Contexts and their candidate lists (2 to 12 candidates of different token lengths)."""
    rng = random.Random(seed)
    extra = ["go to the red ball", "pick up the blue key and then drop it", "open the door", "wait"]
    contexts, candidates = [], []
    for _ in range(n_babyai):
        contexts.append(babyai_prompt(rng))
        pool = [" " + a for a in ACTIONS] + [" " + e for e in extra] + ACTIONS[:2]
        candidates.append(rng.sample(pool, rng.randint(2, 12)))
    for ctx, cands in BOUNDARY:
        contexts.append(ctx)
        candidates.append(list(cands))
    return contexts, candidates


@contextlib.contextmanager
def one_thread():
    """Run torch with one intra-op thread, as scorer workers do (BLAS rounding can depend on the thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
