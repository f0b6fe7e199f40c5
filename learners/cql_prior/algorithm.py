"""CQL-Prior (offline) on the algorithm contract: one iteration = `cql.updates_per_iteration` gradient steps
on a fixed dataset (learners/cql_prior/dataset.py), then evaluation episodes on the env.

With `cql.use_prior` the candidates at s are the LLM's distinct proposals plus the data action (stored in
the dataset, or asked of the LLM once per prompt; with `cql.prior: exact`, the actions the LLM scores highest)
and the target maxes over the proposals at s'; the greedy policy takes the argmax of Q / tau + log p_hat_LLM over
the proposals. Plain CQL (`use_prior: false`) uses every admissible action and asks no LLM. Offline, `env_steps`
counts gradient updates (the progress bar).
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actors.env_runner import make_text_env
from actors.pool_config import scorer_roles
from learners.algorithm import Plot
from learners.cql_prior.config import CQLRunConfig
from learners.cql_prior.dataset import DatasetError, Record, load_dataset, observation
from learners.cql_prior.learner import CQLLearner, OfflineTransition
from learners.dqn_prior.algorithm import state_text
from learners.dqn_prior.config import PriorEnvConfig
from learners.dqn_prior.posterior import dedupe, sample_posterior
from learners.dqn_prior.proposals import ExactPrior, ProposalStats, proposal_prompt, top_k_prior
from learners.state_io import load_state, save_state
from policies.text_encoder import TextEncoder

ANNOTATE_CHUNK = 64
"""Prompts per batched proposal request when the dataset's states are annotated by the LLM."""


class CQLPriorAlgorithm:
    """CQL-Prior or plain CQL on an offline dataset (see the module docstring)."""

    config_class = CQLRunConfig
    plots = (Plot("curves.png", "updates", ("success_rate", "mean_return", "loss_td", "loss_cql")),)

    @staticmethod
    def resource_roles(config: CQLRunConfig) -> list[tuple[str, dict[str, float]]]:
        """(role, placement bundle) of every actor a run starts: the scorer workers of the LLM prior."""
        return scorer_roles(config.pool, config.backend) if config.cql.use_prior else []

    def __init__(self, config: CQLRunConfig, runtime, encoder: TextEncoder | None = None):
        """`encoder`: a loaded TextEncoder of config.encoder to share (its feature cache too), e.g. across runs."""
        c = config
        self.config = config
        self.meta, self.records = load_dataset(c.cql.dataset)
        env = c.env or PriorEnvConfig(self.meta["env"]["id"], self.meta["env"].get("kwargs", {}))
        self.env_id = env.id
        self.env = make_text_env(env.id, **env.kwargs)
        self.rng = np.random.default_rng([c.train.seed, 13])
        self.learner = CQLLearner(encoder or TextEncoder(c.encoder), c.cql, seed=c.train.seed)
        self.scorer = runtime.scorer(c.backend, c.pool) if c.cql.use_prior else None
        self.proposals = c.proposals.sampler(self.scorer)
        self.exact_prior = ExactPrior(self.scorer)
        self.data: list[OfflineTransition] | None = None
        """Built on the first step (after a restore, from the restored proposal cache: no LLM calls)."""
        self.iteration = 0
        self.last_eval: dict[str, float] = {}

    @property
    def env_steps(self) -> int:
        """Offline: the gradient updates done (what the progress bar counts)."""
        return self.learner.updates

    # ---- the contract ----------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        c, start = self.config, time.perf_counter()
        before = dataclasses.replace(self.proposals.stats)
        if self.data is None:
            self.data = self._transitions()
            if c.cql.standardize_features:
                self.learner.standardize([(state, action) for t in self.data for state, actions in
                                          ((t.state, t.actions), (t.next_state, t.next_actions)) for action in actions])
        n = min(c.cql.updates_per_iteration, c.train.total_updates - self.learner.updates)
        sums: dict[str, float] = {}
        for _ in range(n):
            batch = [self.data[i] for i in self.rng.integers(len(self.data), size=c.cql.batch_size)]
            for key, value in self.learner.update(batch).items():
                sums[key] = sums.get(key, 0.0) + value
        self.iteration += 1
        row = {"updates": float(self.learner.updates), **{k: v / max(n, 1) for k, v in sums.items()}}
        self.last_eval = self._evaluate()
        row.update(self.last_eval)
        generated = self.proposals.stats.generated - before.generated
        row["proposals_generated"] = float(generated)
        if generated:
            row["unmatched_rate"] = (self.proposals.stats.unmatched - before.unmatched) / generated
        row["time_s"] = time.perf_counter() - start
        return row

    def finished(self) -> bool:
        return self.learner.updates >= self.config.train.total_updates

    def checkpointable(self) -> bool:
        return True

    def save(self, directory: Path) -> None:
        self.learner.save(directory)
        save_state(directory, "cql_prior", {
            "iteration": self.iteration, "rng": self.rng.bit_generator.state, "last_eval": self.last_eval,
            "proposal_cache": self.proposals.cache, "exact_prior": self.exact_prior.cache,
            "proposal_stats": dataclasses.asdict(self.proposals.stats),
            "dataset_sha256": self.meta["sha256"]})

    def restore(self, directory: Path) -> None:
        state = load_state(directory, "cql_prior")
        if state["dataset_sha256"] != self.meta["sha256"]:
            raise DatasetError(f"{self.config.cql.dataset} is not the dataset {directory} was trained on (sha256 "
                               f"{self.meta['sha256']}, not {state['dataset_sha256']}); resume with that dataset")
        self.learner.restore(directory)
        self.iteration, self.last_eval = state["iteration"], state["last_eval"]
        self.rng.bit_generator.state = state["rng"]
        self.proposals.cache = state["proposal_cache"]
        self.exact_prior.cache = state.get("exact_prior", {})
        self.proposals.stats = ProposalStats(**state["proposal_stats"])
        self.data = None

    def progress(self, row: dict[str, float]) -> dict[str, str]:
        return {"iter": str(self.iteration), "success": f"{row['success_rate']:.2f}",
                "ret": f"{row['mean_return']:.2f}",
                "cql": f"{row.get('loss_cql', math.nan):.3f}"}

    def summary(self) -> dict[str, Any]:
        return {"method": "cql_prior", "use_prior": self.config.cql.use_prior, "env": self.env_id,
                "dataset": self.config.cql.dataset, "dataset_transitions": len(self.records),
                "seed": self.config.train.seed, "updates": self.learner.updates, "iterations": self.iteration,
                "success_rate": self.last_eval.get("success_rate", math.nan),
                "mean_return": self.last_eval.get("mean_return", math.nan),
                "proposals_generated": self.proposals.stats.generated}

    def stop(self) -> None:
        if self.scorer is not None and hasattr(self.scorer, "shutdown"):
            self.scorer.shutdown()
            self.scorer = None

    # ---- parts -----------------------------------------------------------------------------
    def _transitions(self) -> list[OfflineTransition]:
        """The dataset as learner transitions: candidates at s (with the data action) and at s'."""
        if not self.config.cql.use_prior:
            return [_transition(r, r.admissible, () if r.terminated else r.next_admissible) for r in self.records]
        self._annotate()
        result = []
        for r in self.records:
            actions = self._candidates(r.prompt, r.admissible)[0]
            actions += [r.action] if r.action not in actions else []
            next_actions = () if r.terminated else self._candidates(r.next_prompt, r.next_admissible)[0]
            result.append(_transition(r, actions, next_actions))
        return result

    def _candidates(self, prompt: str, admissible, seed: int = 0) -> tuple[list[str], torch.Tensor]:
        """The prior's candidates at a state and their weights: distinct proposals and their counts, or (prior:
        exact) the top-scored actions and their p_LLM. Cached per prompt either way."""
        c = self.config.cql
        if c.prior == "exact":
            return top_k_prior(list(admissible), self.exact_prior.log_probs([prompt], [admissible])[0], c.exact_top_k)
        return dedupe(self.proposals.propose([prompt], [list(admissible)], seed=seed)[0])

    def _annotate(self) -> None:
        """Fill the prior's cache for every state of the dataset: stored proposals first (proposal_source:
        dataset), then the LLM, in batched requests, for the prompts still missing (prior: exact: their scores)."""
        exact = self.config.cql.prior == "exact"
        cache = self.exact_prior.cache if exact else self.proposals.cache
        if self.config.cql.proposal_source == "dataset" and not exact:
            for r in self.records:
                if r.proposals is not None:
                    cache.setdefault(r.prompt, list(r.proposals))
                    if not r.terminated:
                        cache.setdefault(r.next_prompt, list(r.next_proposals))
        wanted = {r.prompt: r.admissible for r in self.records}
        wanted.update({r.next_prompt: r.next_admissible for r in self.records if not r.terminated})
        missing = [p for p in wanted if p not in cache]
        for i in range(0, len(missing), ANNOTATE_CHUNK):
            chunk = missing[i:i + ANNOTATE_CHUNK]
            if exact:
                self.exact_prior.log_probs(chunk, [wanted[p] for p in chunk])
            else:
                self.proposals.propose(chunk, [list(wanted[p]) for p in chunk], seed=self.config.train.seed + i)

    def _evaluate(self) -> dict[str, float]:
        """Evaluation episodes (the same env seeds every iteration): success rate, mean return, length, width."""
        c = self.config
        returns, successes, lengths, widths = [], [], [], []
        for e in range(c.cql.eval_episodes):
            _, info = self.env.reset(seed=c.train.seed + 1000 + e)
            ret, length, done = 0.0, 0, False
            while not done:
                state = state_text(info)
                if c.cql.use_prior:
                    prompt = proposal_prompt(info["mission"], observation(info), info["actions"])
                    candidates, prior = self._candidates(prompt, info["actions"], int(self.rng.integers(2 ** 31)))
                else:
                    candidates, prior = list(info["actions"]), torch.ones(len(info["actions"]), dtype=torch.float64)
                widths.append(len(candidates))
                index = sample_posterior(self.learner.q_values(state, candidates), prior, c.cql.tau, self.rng,
                                         greedy=c.cql.eval_policy == "greedy")
                _, reward, terminated, truncated, info = self.env.step(candidates[index])
                ret, length, done = ret + float(reward), length + 1, terminated or truncated
            returns.append(ret)
            successes.append(float(bool(info.get("success", False))))
            lengths.append(float(length))
        return {"success_rate": _mean(successes), "mean_return": _mean(returns), "eval_length": _mean(lengths),
                "candidates": _mean([float(w) for w in widths])}


def _transition(r: Record, actions, next_actions) -> OfflineTransition:
    return OfflineTransition(r.state, r.action, float(r.reward), r.next_state, r.terminated, tuple(next_actions),
                             tuple(actions))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
