"""The LLM's proposals: k sampled actions per state, each mapped to an admissible command.

Matching, in order (documented rule): (1) exact, after normalising case, whitespace, quotes and trailing
punctuation of the first line of the generation (a leading "Action:" is dropped); (2) fuzzy: the
admissible command with the highest difflib similarity ratio to the normalised text, if that ratio is at
least `threshold` and no other command ties with it; (3) keywords: the one admissible command whose
distinctive words (those not in every admissible command, e.g. "down" of "go down") all occur among the
text's words, when exactly one command qualifies ("move down 4 steps" -> "go down"; "left or down" ->
none); (4) otherwise unmatched. An unmatched proposal is
counted and resampled (a new generation for the missing ones) up to `max_resamples` times; it is never
mapped to an arbitrary command (the reference took the last admissible one). A state where nothing
matched falls back to a uniform prior over its admissible actions, counted as `no_match_states`.
Proposals are cached per prompt (the prior of a state is sampled once, as the reference does).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Sequence

import torch

PROMPT = ("{mission}\nObservation: {observation}\nSelect only one action from the admissible actions: "
          "[{actions}].\nAction:")


def proposal_prompt(mission: str, observation: str, actions: Sequence[str]) -> str:
    """The prompt the LLM proposes actions for: the task, the observation, the admissible actions."""
    return PROMPT.format(mission=mission, observation=observation, actions=", ".join(actions))


def normalise(text: str) -> str:
    """First line, lower case, no 'Action:' prefix, quotes or trailing punctuation, single spaces."""
    line = text.strip().split("\n", 1)[0].lower()
    line = re.sub(r"^\s*action\s*\d*\s*:", "", line)
    line = line.strip().strip("\"'`").rstrip(".!,;:").strip()
    return re.sub(r"\s+", " ", line)


def match_action(text: str, admissible: Sequence[str], threshold: float = 0.8) -> str | None:
    """The admissible command `text` names (see the module docstring), or None."""
    wanted = normalise(text)
    if not wanted:
        return None
    by_norm = {normalise(a): a for a in admissible}
    if wanted in by_norm:
        return by_norm[wanted]
    ratios = [(difflib.SequenceMatcher(None, wanted, norm).ratio(), a) for norm, a in by_norm.items()]
    if not ratios:
        return None
    best = max(r for r, _ in ratios)
    winners = [a for r, a in ratios if r == best]
    if best >= threshold and len(winners) == 1:
        return winners[0]
    return _keyword_match(wanted, by_norm)


def _keyword_match(wanted: str, by_norm: dict[str, str]) -> str | None:
    """Rule (3): the single command whose distinctive words all occur in `wanted`."""
    words = {norm: set(re.findall(r"\w+", norm)) for norm in by_norm}
    shared = set.intersection(*words.values()) if words else set()
    said = set(re.findall(r"\w+", wanted))
    hits = [by_norm[norm] for norm, w in words.items() if w - shared and (w - shared) <= said]
    return hits[0] if len(hits) == 1 else None


@dataclass
class ProposalStats:
    generated: int = 0
    """Generations parsed."""
    unmatched: int = 0
    """Generations that named no admissible command (each was resampled or dropped)."""
    no_match_states: int = 0
    """States where no generation matched (uniform prior used)."""
    cache_hits: int = 0
    """States whose proposals came from the cache."""


class ProposalSampler:
    """k proposals per state through a scorer's `generate` (n=k in one batched call), matched, cached."""

    def __init__(self, scorer, k: int, temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 10,
                 max_resamples: int = 2, threshold: float = 0.8):
        self.scorer = scorer
        self.k, self.temperature, self.top_p = k, temperature, top_p
        self.max_new_tokens, self.max_resamples, self.threshold = max_new_tokens, max_resamples, threshold
        self.cache: dict[str, list[str]] = {}
        self.stats = ProposalStats()

    def propose(self, prompts: Sequence[str], admissible: Sequence[Sequence[str]], seed: int) -> list[list[str]]:
        """For each prompt, up to k matched admissible commands (duplicates kept: they are the prior)."""
        result: list[list[str] | None] = [self.cache.get(p) for p in prompts]
        self.stats.cache_hits += sum(r is not None for r in result)
        todo = {i: [] for i, r in enumerate(result) if r is None}
        for attempt in range(self.max_resamples + 1):
            asking = [i for i, got in todo.items() if len(got) < self.k]
            if not asking:
                break
            counts = {i: self.k - len(todo[i]) for i in asking}
            n = max(counts.values())
            texts = self.scorer.generate([prompts[i] for i in asking], n=n, max_new_tokens=self.max_new_tokens,
                                         temperature=self.temperature, top_p=self.top_p, stop=["\n"],
                                         seed=seed + attempt).texts
            for i, samples in zip(asking, texts):
                for sample in samples[:counts[i]]:
                    self.stats.generated += 1
                    action = match_action(sample, admissible[i], self.threshold)
                    if action is None:
                        self.stats.unmatched += 1
                    else:
                        todo[i].append(action)
        for i, got in todo.items():
            if not got:
                self.stats.no_match_states += 1
                got = list(admissible[i])  # uniform prior: every admissible action once
            self.cache[prompts[i]] = got
            result[i] = got
        return result  # type: ignore[return-value]


class ExactPrior:
    """p_LLM over every admissible action: each action scored by the scorer given the proposal prompt, once per
    prompt (the cache is JSON-safe: prompt -> log-probs in the order of the admissible actions)."""

    def __init__(self, scorer):
        self.scorer = scorer
        self.cache: dict[str, list[float]] = {}

    def log_probs(self, prompts: Sequence[str], admissible: Sequence[Sequence[str]]) -> list[list[float]]:
        """For each prompt, the log-probs of its admissible actions (one batched request for the uncached)."""
        missing = {p: a for p, a in zip(prompts, admissible) if p not in self.cache}
        if missing:
            scored = self.scorer.score(list(missing), [[" " + a for a in acts] for acts in missing.values()])
            self.cache.update(zip(missing, scored.logprobs))
        return [self.cache[p] for p in prompts]


def top_k_prior(actions: Sequence[str], log_probs: Sequence[float], k: int = 0) -> tuple[list[str], torch.Tensor]:
    """The k actions the LLM scores highest (k = 0: all of them, in their order; ties keep the earlier), with
    their p_LLM (normalised over the whole list)."""
    if len(actions) != len(log_probs):
        raise ValueError(f"{len(actions)} actions but {len(log_probs)} log-probs")
    probs = torch.softmax(torch.tensor(log_probs, dtype=torch.float64), dim=0)
    if k <= 0 or k >= len(actions):
        return list(actions), probs
    keep = sorted(sorted(range(len(actions)), key=lambda i: -float(probs[i]))[:k])
    return [actions[i] for i in keep], probs[keep]
