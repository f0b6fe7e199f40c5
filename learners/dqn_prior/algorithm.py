"""DQN-Prior on the algorithm contract: one episode per iteration on a text env, then Q-learning updates.

Acting: the candidates of a state are the LLM's k proposals (deduplicated, counts = p_hat_LLM) or, with
`prior: exact`, every admissible action weighted by the LLM's scores; the action is drawn from
softmax(Q / tau + log p_LLM). The DQN baseline (`use_prior: false`) acts on softmax(Q / tau) over every
admissible action and asks no LLM. Targets take the max (Double DQN: the online argmax) over the
candidates of s' stored at collection time.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actors.env_runner import make_text_env
from actors.pool_config import scorer_roles
from learners.algorithm import Plot
from learners.dqn_prior.config import DQNPriorRunConfig
from learners.dqn_prior.learner import QLearner
from learners.dqn_prior.posterior import dedupe, sample_posterior
from learners.dqn_prior.proposals import ExactPrior, ProposalStats, proposal_prompt, top_k_prior
from learners.dqn_prior.replay import ReplayBuffer, Transition
from learners.state_io import load_state, save_state
from policies.text_encoder import TextEncoder


def state_text(info: dict) -> str:
    """What the Q-network and the prompt read as the state: the objective and the observation."""
    return f"{info['mission']}. {' '.join(info['descriptions'])}"


class DQNPriorAlgorithm:
    """DQN-Prior or the DQN baseline (see the module docstring)."""

    config_class = DQNPriorRunConfig
    plots = (Plot("curves.png", "env_steps", ("success_rate", "mean_return", "loss_td")),)

    def __init__(self, config: DQNPriorRunConfig, runtime):
        c = config
        self.config = config
        self.env = make_text_env(c.env.id, **c.env.kwargs)
        self.rng = np.random.default_rng([c.train.seed, 7])
        self.learner = QLearner(TextEncoder(c.encoder), c.dqn, seed=c.train.seed)
        self.replay = ReplayBuffer(c.dqn.replay_capacity)
        self.scorer = runtime.scorer(c.backend, c.pool) if c.dqn.use_prior else None
        self.proposals = c.proposals.sampler(self.scorer)
        self.exact_prior = ExactPrior(self.scorer)
        """prior: exact: the LLM's log-probs of every admissible action, per prompt."""
        self.iteration = 0
        self.env_steps = 0
        self.recent: deque[dict[str, float]] = deque(maxlen=c.train.success_window)

    @staticmethod
    def resource_roles(config: DQNPriorRunConfig) -> list[tuple[str, dict[str, float]]]:
        """(role, placement bundle) of every actor a run starts: the scorer workers of the LLM prior."""
        return scorer_roles(config.pool, config.backend) if config.dqn.use_prior else []

    # ---- the contract ----------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One episode, then `updates_per_episode` Q-learning updates once the buffer holds enough."""
        c, start = self.config.dqn, time.perf_counter()
        before = dataclasses.replace(self.proposals.stats)
        _, info = self.env.reset(seed=self.config.train.seed if self.iteration == 0 else None)
        state = state_text(info)
        candidates, prior = self._candidates(state, info)
        ret, length, widths, done = 0.0, 0, [], False
        while not done:
            widths.append(len(candidates))
            if self.rng.random() < c.epsilon:
                index = int(self.rng.integers(len(candidates)))
            else:
                index = sample_posterior(self.learner.q_values(state, candidates), prior, c.tau, self.rng)
            action = candidates[index]
            _, reward, terminated, truncated, info = self.env.step(action)
            next_state = state_text(info)
            next_candidates, next_prior = ([], None) if terminated else self._candidates(next_state, info)
            self.replay.add(Transition(state, action, float(reward), next_state, bool(terminated),
                                       tuple(next_candidates)))
            ret, length, done = ret + float(reward), length + 1, terminated or truncated
            state, candidates, prior = next_state, next_candidates, next_prior
        self.iteration += 1
        self.env_steps += length
        self.recent.append({"return": ret, "success": float(bool(info.get("success", False)))})
        row = {"episodes": float(self.iteration), "env_steps": float(self.env_steps), "return": ret,
               "episode_length": float(length), "success": self.recent[-1]["success"],
               "success_rate": _mean([e["success"] for e in self.recent]),
               "mean_return": _mean([e["return"] for e in self.recent]),
               "candidates": _mean([float(w) for w in widths])}
        row.update(self._train())
        row.update(self._proposal_costs(before))
        row["time_s"] = time.perf_counter() - start
        return row

    def finished(self) -> bool:
        return self.env_steps >= self.config.train.total_env_steps

    def checkpointable(self) -> bool:
        return True  # iterations end between episodes

    def save(self, directory: Path) -> None:
        self.learner.save(directory)
        env_rng = getattr(self.env.unwrapped, "_np_random", None)
        save_state(directory, "dqn_prior", {
            "iteration": self.iteration, "env_steps": self.env_steps, "recent": list(self.recent),
            "rng": self.rng.bit_generator.state, "replay": self.replay.state(),
            "proposal_cache": self.proposals.cache, "exact_prior": self.exact_prior.cache,
            "proposal_stats": dataclasses.asdict(self.proposals.stats),
            "env_rng": env_rng.bit_generator.state if env_rng is not None else None})

    def restore(self, directory: Path) -> None:
        self.learner.restore(directory)
        state = load_state(directory, "dqn_prior")
        self.iteration, self.env_steps = state["iteration"], state["env_steps"]
        self.recent.clear()
        self.recent.extend(state["recent"])
        self.rng.bit_generator.state = state["rng"]
        self.replay.load_state(state["replay"])
        self.proposals.cache = state["proposal_cache"]
        self.exact_prior.cache = state["exact_prior"]
        self.proposals.stats = ProposalStats(**state["proposal_stats"])
        if state["env_rng"] is not None:
            self.env.reset(seed=0)  # creates the generator whose state is then restored
            self.env.unwrapped._np_random.bit_generator.state = state["env_rng"]

    def progress(self, row: dict[str, float]) -> dict[str, str]:
        return {"episodes": str(self.iteration), "success": f"{row['success_rate']:.2f}",
                "ret": f"{row['mean_return']:.2f}"}

    def summary(self) -> dict[str, Any]:
        stats = self.proposals.stats
        return {"method": "dqn_prior", "use_prior": self.config.dqn.use_prior, "env": self.config.env.id,
                "seed": self.config.train.seed, "env_steps": self.env_steps, "episodes": self.iteration,
                "success_rate": _mean([e["success"] for e in self.recent]),
                "mean_return": _mean([e["return"] for e in self.recent]),
                "proposals_generated": stats.generated, "proposals_unmatched": stats.unmatched}

    def stop(self) -> None:
        if self.scorer is not None and hasattr(self.scorer, "shutdown"):
            self.scorer.shutdown()
            self.scorer = None

    # ---- parts -----------------------------------------------------------------------------
    def _candidates(self, state: str, info: dict) -> tuple[list[str], torch.Tensor]:
        """The actions to choose among at this state and their prior weights."""
        admissible = list(info["actions"])
        if not admissible:
            raise ValueError(f"env {self.config.env.id} offered no admissible action; a text env must list at least one")
        c = self.config.dqn
        if not c.use_prior:
            return admissible, torch.ones(len(admissible), dtype=torch.float64)
        prompt = proposal_prompt(info["mission"], " ".join(info["descriptions"]), admissible)
        if c.prior == "exact":  # p_LLM over every admissible action, scored once per prompt
            return top_k_prior(admissible, self.exact_prior.log_probs([prompt], [admissible])[0])
        proposals = self.proposals.propose([prompt], [admissible], seed=int(self.rng.integers(2 ** 31)))[0]
        return dedupe(proposals)

    def _train(self) -> dict[str, float]:
        c = self.config.dqn
        if len(self.replay) < max(c.learning_starts, 1):
            return {"replay_size": float(len(self.replay))}
        sums: dict[str, float] = {}
        for _ in range(c.updates_per_episode):
            for key, value in self.learner.update(self.replay.sample(c.batch_size, self.rng)).items():
                sums[key] = sums.get(key, 0.0) + value
        return {"replay_size": float(len(self.replay)), "updates": float(self.learner.updates),
                **{k: v / c.updates_per_episode for k, v in sums.items()}}

    def _proposal_costs(self, before: ProposalStats) -> dict[str, float]:
        after = self.proposals.stats
        generated = after.generated - before.generated
        row = {"proposals_generated": float(generated), "proposal_cache_hits": float(after.cache_hits - before.cache_hits),
               "no_match_states": float(after.no_match_states - before.no_match_states)}
        if generated:
            row["unmatched_rate"] = (after.unmatched - before.unmatched) / generated
        return row


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
