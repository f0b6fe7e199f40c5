"""`llmrl collect CONFIG [--set k=v ...]`: write an offline dataset (learners/cql_prior/dataset.py) from a
behaviour policy on a text env.

Behaviours: `random` (uniform over the admissible actions); `llm` (one of the LLM's k proposals, drawn
uniformly, so actions follow p_hat_LLM); `checkpoint` (a DQN-Prior run or checkpoint directory: the argmax,
or with `soft: true` a draw, of its posterior softmax(Q / tau + log p_LLM) over its own candidates);
`epsilon-greedy` (a uniformly random admissible action with probability `epsilon`, else the greedy action of
`checkpoint` when one is given, else the LLM's most proposed action). When an LLM proposes, the proposals at
s and s' are stored with each transition (those of a checkpoint come from its own proposal sampler and cache).
"""
from __future__ import annotations

import argparse
import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from actors.env_runner import make_text_env
from actors.pool_config import PoolConfig
from cluster.config import (ConfigError, apply_overrides, check_env_id, check_range, from_dict, read_yaml, require,
                            to_dict)
from cluster.ray_runtime import RayConfig
from cluster.runtime import make_runtime
from learners.dqn_prior.config import ProposalConfig
from learners.cql_prior.dataset import DatasetWriter, Record, observation
from learners.dqn_prior.algorithm import state_text
from learners.dqn_prior.config import PriorEnvConfig
from learners.dqn_prior.posterior import dedupe, sample_posterior
from learners.dqn_prior.proposals import ProposalSampler, proposal_prompt
from policies.config import BackendConfig


def propose_at(sampler: ProposalSampler, info: dict, seed: int) -> list[str]:
    """The LLM's k proposals (matched, cached per prompt) at the state a text env's `info` describes."""
    prompt = proposal_prompt(info["mission"], observation(info), info["actions"])
    return sampler.propose([prompt], [list(info["actions"])], seed=seed)[0]


@dataclass(frozen=True)
class CollectConfig:
    """What `llmrl collect` writes: the env, the behaviour policy, the budget and the output directory."""

    env: PriorEnvConfig = field(default_factory=PriorEnvConfig)
    behaviour: Literal["random", "epsilon-greedy", "llm", "checkpoint"] = "random"
    episodes: int | None = 100
    """Stop after this many episodes (null: only env_steps counts)."""
    env_steps: int | None = None
    """Stop after the episode in which this many env steps were reached (null: only episodes counts)."""
    seed: int = 0
    """Seeds the behaviour's draws and the first env reset."""
    output: str = "datasets/frozenlake_random"
    """The dataset directory to write (written under a temporary name, renamed when complete)."""
    overwrite: bool = False
    """Replace an existing dataset at `output` (otherwise that is an error)."""
    epsilon: float = 0.2
    """epsilon-greedy: the probability of a uniformly random admissible action."""
    checkpoint: str | None = None
    """A DQN-Prior checkpoint directory (or run directory: its latest checkpoint) for checkpoint and
    epsilon-greedy; it acts with its own LLM settings (backend, pool, k) from its config."""
    soft: bool = False
    """checkpoint: draw from the checkpoint's posterior instead of taking its argmax."""
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    """The LLM that proposes (behaviour llm, or epsilon-greedy without a checkpoint)."""
    pool: PoolConfig = field(default_factory=PoolConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    use_ray: bool = True
    """Ask the LLM through a Ray scorer pool (false: in-process). random starts no Ray."""

    def __post_init__(self):
        check_range(self, "episodes", "env_steps", ge=1, none_ok=True)
        require(self.episodes is not None or self.env_steps is not None, "episodes", self.episodes,
                "give episodes or env_steps (or both)")
        check_range(self, "epsilon", ge=0, le=1)
        require(self.checkpoint is not None or self.behaviour != "checkpoint", "checkpoint", self.checkpoint,
                "behaviour checkpoint needs a DQN-Prior checkpoint directory")
        require(self.checkpoint is None or self.behaviour in ("checkpoint", "epsilon-greedy"), "checkpoint",
                self.checkpoint, "only used by behaviour checkpoint or epsilon-greedy")
        require(bool(self.output), "output", self.output, "must name the dataset directory to write")
        check_env_id(self.env.id)


def load_collect_config(path: str | Path, overrides: Sequence[str] = ()) -> CollectConfig:
    """A collect config YAML with dotted overrides applied; errors name the file and the dotted key."""
    data = read_yaml(path, example="configs/collect/frozenlake.yaml")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of collect config fields, got {data!r}")
    return from_dict(CollectConfig, apply_overrides(data, overrides), where=str(path))


def load_dqn_checkpoint(path: str | Path, runtime):
    """A DQNPriorAlgorithm restored from a checkpoint directory (or a run directory's latest checkpoint)."""
    from cluster.checkpoint import latest_checkpoint
    from cluster.experiment import read_config
    from learners.dqn_prior.algorithm import DQNPriorAlgorithm

    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"checkpoint: {str(path)!r} is not a directory; give a DQN-Prior checkpoint or run directory")
    if (path / "checkpoints").is_dir():  # a run directory: its latest checkpoint
        path = latest_checkpoint(path) or path
    config = read_config(path)
    if config.method != "dqn_prior":
        raise ConfigError(f"checkpoint: {str(path)!r} is a {config.method} checkpoint; give a dqn_prior one")
    agent = DQNPriorAlgorithm(config, runtime)
    agent.restore(path)
    return agent


class Collector:
    """Runs the behaviour policy of a CollectConfig on its env and writes the transitions."""

    def __init__(self, config: CollectConfig, runtime):
        c = config
        self.config = config
        self.rng = np.random.default_rng([c.seed, 11])
        self.env = make_text_env(c.env.id, **c.env.kwargs)
        self.agent, self.sampler = None, None
        if c.checkpoint is not None:
            self.agent = load_dqn_checkpoint(c.checkpoint, runtime)
            dqn = self.agent.config.dqn
            self.sampler = self.agent.proposals if dqn.use_prior and dqn.prior == "proposals" else None
        elif c.behaviour in ("llm", "epsilon-greedy"):
            self.sampler = c.proposals.sampler(runtime.scorer(c.backend, c.pool))

    def act(self, info: dict, proposals: list[str] | None) -> str:
        c, admissible = self.config, list(info["actions"])
        if c.behaviour == "random" or c.behaviour == "epsilon-greedy" and self.rng.random() < c.epsilon:
            return admissible[int(self.rng.integers(len(admissible)))]
        if c.behaviour == "llm":
            return proposals[int(self.rng.integers(len(proposals)))]
        if self.agent is None:  # epsilon-greedy over the LLM: its most proposed action (first seen on ties)
            unique, counts = dedupe(proposals)
            return unique[int(counts.argmax())]
        state = state_text(info)
        candidates, prior = self.agent._candidates(state, info)
        q = self.agent.learner.q_values(state, candidates)
        greedy = not (c.behaviour == "checkpoint" and c.soft)
        return candidates[sample_posterior(q, prior, self.agent.config.dqn.tau, self.rng, greedy=greedy)]

    def propose(self, info: dict, terminated: bool = False) -> list[str] | None:
        if self.sampler is None:
            return None
        return [] if terminated else propose_at(self.sampler, info, int(self.rng.integers(2 ** 31)))

    def run(self) -> dict[str, Any]:
        """Collect to the budget and commit the dataset; returns its meta."""
        c = self.config
        episodes = steps = successes = 0
        returns: list[float] = []
        with DatasetWriter(c.output, c.overwrite) as writer:
            while (c.episodes is None or episodes < c.episodes) and (c.env_steps is None or steps < c.env_steps):
                _, info = self.env.reset(seed=c.seed if episodes == 0 else None)
                proposals, ret, step, done = self.propose(info), 0.0, 0, False
                while not done:
                    action = self.act(info, proposals)
                    _, reward, terminated, truncated, next_info = self.env.step(action)
                    next_proposals = self.propose(next_info, terminated)
                    writer.add(Record(episodes, step, info["mission"], observation(info), action, float(reward),
                                      observation(next_info), bool(terminated), bool(truncated),
                                      tuple(info["actions"]), tuple(next_info["actions"]),
                                      None if proposals is None else tuple(proposals),
                                      None if next_proposals is None else tuple(next_proposals)))
                    ret, step, done = ret + float(reward), step + 1, terminated or truncated
                    info, proposals = next_info, next_proposals
                episodes, steps = episodes + 1, steps + step
                successes += int(bool(info.get("success", False)))
                returns.append(ret)
            stats = self.sampler.stats if self.sampler is not None else None
            meta = {"episodes": episodes, "env": {"id": c.env.id, "kwargs": c.env.kwargs}, "behaviour": c.behaviour,
                    "seed": c.seed, "has_proposals": self.sampler is not None, "successes": successes,
                    "mean_return": sum(returns) / len(returns),
                    "proposals_generated": stats.generated if stats else 0,
                    "proposals_unmatched": stats.unmatched if stats else 0,
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "config": to_dict(c)}
            writer.commit(meta)
        return {"transitions": writer.count, **meta}

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
        elif self.sampler is not None and hasattr(self.sampler.scorer, "shutdown"):
            self.sampler.scorer.shutdown()


def collect(config: CollectConfig, runtime=None) -> dict[str, Any]:
    """Write the dataset `config` describes; returns its meta (with the transition count)."""
    own = runtime is None
    runtime = runtime or make_runtime(config.use_ray, config.ray)
    collector = None
    try:
        collector = Collector(config, runtime)
        return collector.run()
    finally:
        if collector is not None:
            collector.stop()
        if own:
            runtime.shutdown()


def collect_command(args: argparse.Namespace) -> int:
    """The `llmrl collect` handler."""
    config = load_collect_config(args.config, args.overrides)
    meta = collect(config)
    print(f"llmrl collect: wrote {meta['transitions']} transitions of {meta['episodes']} episodes "
          f"({meta['behaviour']}, {meta['successes']} successes) to {config.output} "
          f"({json.dumps({k: meta[k] for k in ('mean_return', 'proposals_generated', 'proposals_unmatched')})})")
    return 0
