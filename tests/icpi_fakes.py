"""Test doubles for ICPI: a tiny chain env on the IcpiEnv interface and a deterministic fake LLM."""
from __future__ import annotations

import re
import zlib

import numpy as np

from envs.icpi.base import IcpiEnv, TimeStep
from policies.backend import GenerateResult, ScoreResult

GOAL = 2
STATE_PATTERN = re.compile(r"^assert state == \[(\d)\]( and state != \[2\])?\n$")


class TinyChain(IcpiEnv):
    """4 states, goal 2, start uniform; left/right move +-1 (clipped); try_goal ends with reward 1 at the goal."""

    name = "tiny-chain"
    gamma = 0.8
    horizon = 3
    time_limit = 5
    action_strings = ("state = left()\n", "reward = try_goal(state)\n", "state = right()\n")
    initial_str = "state = reset()\n"

    def state_str(self, state: int) -> str:
        return f"assert state == [{state}]" + (f" and state != [{GOAL}]" if self.hint else "") + "\n"

    def parse_state(self, text: str) -> str | None:
        match = STATE_PATTERN.match(text)
        return text if match and bool(match.group(2)) == self.hint else None

    def optimal_return(self) -> float:
        return self.gamma ** abs(self.start - GOAL)

    def reset(self, *, seed=None, options=None):
        rng = self.seed_rng(seed)
        self.state = self.start = int(rng.integers(4))
        self.t = 0
        return self.state_str(self.state), {"state": self.state, "optimal_return": self.optimal_return()}

    def step(self, action: int):
        self.t += 1
        if action == 1:
            return self.state_str(self.state), float(self.state == GOAL), True, False, {"state": self.state}
        self.state = int(np.clip(self.state + (1 if action == 2 else -1), 0, 3))
        return self.state_str(self.state), 0.0, False, self.t >= self.time_limit, {"state": self.state}


def step(state: int, action: int, reward: float = 0.0, done: bool = False, next_state: int | None = None,
         env: TinyChain | None = None) -> TimeStep:
    """A TimeStep of TinyChain written with its state lines."""
    env = env or TinyChain()
    return TimeStep(env.state_str(state), action, reward, done, env.state_str(state if next_state is None else next_state))


class FakeLLM:
    """A deterministic LLM: continues a prompt with the line that followed its query in the last example
    holding that query (else the first answer line of the last example); every prompt whose CRC is
    divisible by `garbage_every` gets an invalid answer instead. Score: 0 for that answer, -1 otherwise."""

    def __init__(self, garbage_every: int = 0):
        self.garbage_every = garbage_every

    def answer(self, prompt: str) -> str:
        if self.garbage_every and zlib.crc32(prompt.encode()) % self.garbage_every == 0:
            return "garbage"
        *examples, query = prompt.split("\n\n")
        for example in reversed(examples):
            if example.startswith(query):
                return example[len(query):].split("\n")[0]
        if examples:
            lines = examples[-1].split("\n")
            return lines[min(len(query.split("\n")) - 1, len(lines) - 1)]
        return "garbage"

    def generate(self, prompts, *, n=1, max_new_tokens=32, temperature=0.0, top_p=1.0, stop=(), seed=None):
        return GenerateResult(texts=[[self.answer(p)] * n for p in prompts], versions=[0] * len(prompts))

    def score(self, contexts, candidates, *, mean=False):
        scores = [[0.0 if c == self.answer(ctx) + "\n" else -1.0 for c in cands]
                  for ctx, cands in zip(contexts, candidates)]
        return ScoreResult(logprobs=scores, versions=[0] * len(contexts))


def count_chars(text: str) -> int:
    """A token counter for tests: one token per character."""
    return len(text)
