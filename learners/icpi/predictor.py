"""Predictions for ICPI rollouts: done, reward, next state (world model) and next action (policy).

A predictor answers a batch of same-kind requests at once. `LLMPredictor` asks the LLM with one
batched request per attempt; `MatchingPredictor` (a baseline) looks the answer up in the buffer.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Sequence

import numpy as np

from envs.icpi.base import IcpiEnv
from learners.icpi.buffers import EpisodeBuffers
from learners.icpi.client import CountingClient
from learners.icpi.config import ICPIConfig
from learners.icpi.prompts import (TokenCounter, clip_front, done_examples, next_state_examples, policy_examples,
                                   policy_query, reward_examples, world_query)

Kind = Literal["done", "reward", "state", "action"]
KINDS: tuple[Kind, ...] = ("done", "reward", "state", "action")
ANSWER_MARGIN_TOKENS = 8
"""Generated tokens allowed beyond the longest answer of the prompt's kind."""


@dataclass(frozen=True)
class Request:
    """One prediction: the world model's about taking `action` in `state`, or the policy's in `state`."""

    kind: Kind
    state: str
    action: int | None = None
    """World-model kinds: the action taken in `state`."""
    done: bool | None = None
    """Reward: the predicted done (it picks the reward prompt)."""


class Predictor(Protocol):
    def begin_step(self, seed: int) -> None:
        """Called once per env step before its predictions (fixes that step's prompt shuffles)."""

    def predict(self, requests: Sequence[Request]) -> list[Any | None]:
        """One answer per request (all of one kind); None where no valid answer was found."""


class LLMPredictor:
    """Builds prompts from the buffers and asks the LLM; invalid sampled output is retried with a reshuffle.

    Within an env step the shuffled examples of each (kind, action, done, attempt) are drawn once from a
    generator seeded by (step seed, key), so every query of one prompt shares its prefix, and the
    prompts do not depend on the order in which rollouts ask.
    """

    def __init__(self, env: IcpiEnv, buffers: EpisodeBuffers, client: CountingClient, config: ICPIConfig,
                 count_tokens: TokenCounter):
        self.env = env
        self.buffers = buffers
        self.client = client
        self.config = config
        self.count_tokens = count_tokens
        self.step_seed = 0
        self.rng = np.random.default_rng(0)
        self._examples: dict[tuple, list[str]] = {}

    def begin_step(self, seed: int) -> None:
        self.step_seed = seed
        self.rng = np.random.default_rng([seed, len(KINDS)])
        self._examples.clear()

    # ---- prompts --------------------------------------------------------------------------------
    def examples(self, request: Request, attempt: int) -> list[str]:
        """The examples of the request's prompt at this attempt, fixed for the env step."""
        key = (request.kind, request.action, request.done, attempt)
        if key not in self._examples:
            code = [KINDS.index(request.kind), -1 if request.action is None else request.action,
                    -1 if request.done is None else int(request.done), attempt]
            rng = np.random.default_rng([self.step_seed, *[c + 1 for c in code]])
            self._examples[key] = clip_front(self._build(request, rng), self.config.token_budget, self.count_tokens,
                                             tail=self.longest_query(request))
        return self._examples[key]

    def longest_query(self, request: Request) -> str:
        """The request's query with the longest stored state line: the room kept free after the examples.

        It does not depend on the state asked about, so every query of one prompt shares the same prefix.
        """
        longest = max(self._state_lines(), key=lambda line: (self.count_tokens(line), line), default=request.state)
        return self.query(Request(request.kind, longest, request.action, request.done))

    def _state_lines(self) -> set[str]:
        return {line for ts in self.buffers.steps() for line in (ts.state, ts.next_state)}

    def _build(self, request: Request, rng: np.random.Generator) -> list[str]:
        env, buffers, action = self.env, self.buffers, request.action
        if request.kind == "done":
            return done_examples(env, buffers, action, rng)
        if request.kind == "reward":
            return reward_examples(env, buffers, action, request.done, rng)
        if request.kind == "state":
            return next_state_examples(env, buffers, action, rng)
        return policy_examples(env, buffers, rng)

    def query(self, request: Request) -> str:
        if request.kind == "action":
            return policy_query(self.env, request.state)
        return world_query(self.env, request.state, request.action)

    def prompt(self, request: Request, attempt: int) -> str:
        return "".join(self.examples(request, attempt)) + self.query(request)

    # ---- answers --------------------------------------------------------------------------------
    def answer_set(self, kind: Kind) -> tuple[str, ...]:
        """Every valid answer of a small-answer-set kind (done, reward, action)."""
        if kind == "done":
            return (self.env.done_str(True), self.env.done_str(False))
        if kind == "reward":
            return tuple(self.env.reward_str(v) for v in self.env.reward_values)
        if kind == "action":
            return tuple(self.env.action_strings)
        raise ValueError(f"{kind!r} has no answer set; only done, reward and action do")

    def parse(self, kind: Kind, text: str) -> Any | None:
        parser = {"done": self.env.parse_done, "reward": self.env.parse_reward,
                  "state": self.env.parse_state, "action": self.env.parse_action}[kind]
        return parser(text)

    def max_new_tokens(self, kind: Kind) -> int:
        """The config's cap, lowered to the longest known answer of this kind plus a margin."""
        if kind == "state":
            answers = self._state_lines()
        else:
            answers = set(self.answer_set(kind))
        longest = max((self.count_tokens(a) for a in answers), default=self.config.max_new_tokens)
        return min(self.config.max_new_tokens, longest + ANSWER_MARGIN_TOKENS)

    # ---- prediction -----------------------------------------------------------------------------
    def predict(self, requests: Sequence[Request]) -> list[Any | None]:
        if not requests:
            return []
        kinds = {r.kind for r in requests}
        if len(kinds) != 1:
            raise ValueError(f"one batch holds one kind of prediction, got {sorted(kinds)}; split the requests")
        kind = requests[0].kind
        if self.config.score_answer_sets and kind != "state":
            return self._score(kind, requests)
        return self._sample(kind, requests)

    def _score(self, kind: Kind, requests: Sequence[Request]) -> list[Any]:
        answers = self.answer_set(kind)
        result = self.client.score([self.prompt(r, 0) for r in requests], [list(answers)] * len(requests))
        return [self.parse(kind, answers[self._pick(logprobs)]) for logprobs in result.logprobs]

    def _pick(self, logprobs: Sequence[float]) -> int:
        if self.config.answer_temperature == 0:
            return int(np.argmax(logprobs))
        z = np.asarray(logprobs) / self.config.answer_temperature
        p = np.exp(z - z.max())
        return int(self.rng.choice(len(p), p=p / p.sum()))

    def _sample(self, kind: Kind, requests: Sequence[Request]) -> list[Any | None]:
        stop = self.env.stop(kind)
        results: list[Any | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        for attempt in range(self.config.max_retries + 1):
            if not pending:
                break
            seed = zlib.crc32(f"{self.step_seed}/{kind}/{attempt}".encode()) & 0x7FFFFFFF
            out = self.client.generate([self.prompt(requests[i], attempt) for i in pending],
                                       max_new_tokens=self.max_new_tokens(kind), temperature=self.config.temperature,
                                       stop=[stop], seed=seed)
            invalid = []
            for i, texts in zip(pending, out.texts):
                results[i] = self.parse(kind, texts[0] + stop)
                if results[i] is None:
                    invalid.append(i)
            self.client.stats.sampled += len(pending)
            self.client.stats.invalid += len(invalid)
            pending = invalid
        return results


class MatchingPredictor:
    """The matching-model baseline: the outcome of the latest real step with the same state (and action)."""

    def __init__(self, buffers: EpisodeBuffers):
        self.buffers = buffers
        self._latest_step: dict[tuple[str, int], Any] = {}
        self._latest_action: dict[str, int] = {}

    def begin_step(self, seed: int) -> None:
        self._latest_step = {(ts.state, ts.action): ts for ts in self.buffers.steps()}
        self._latest_action = {ts.state: ts.action for ts in self.buffers.steps()}

    def predict(self, requests: Sequence[Request]) -> list[Any | None]:
        return [self._lookup(r) for r in requests]

    def _lookup(self, request: Request) -> Any | None:
        if request.kind == "action":
            return self._latest_action.get(request.state)
        ts = self._latest_step.get((request.state, request.action))
        if ts is None:
            return None
        return {"done": ts.done, "reward": ts.reward, "state": ts.next_state}[request.kind]
