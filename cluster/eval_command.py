"""`llmrl eval`: success rate and mean return of a trained checkpoint, or of the random / zero-shot baselines."""
from __future__ import annotations

import json
from pathlib import Path

from actors.env_runner import EnvRunner, RunnerConfig
from policies.backend import ScoreResult
from policies.config import BackendConfig


class UniformScorer:
    """The random baseline: every candidate scores the same, so the runner samples uniformly."""

    def score(self, contexts, candidates, **_) -> ScoreResult:
        return ScoreResult(logprobs=[[0.0] * len(c) for c in candidates], versions=[0] * len(contexts),
                           values=[0.0] * len(contexts))


def make_eval_policy(policy: str, checkpoint: str | None, model: str):
    """The scorer to evaluate: a checkpoint's policy, the untrained LLM, or uniform random."""
    from policies.llm_policy import LLMPolicy
    from policies.value_head import ValueHeadConfig

    if policy == "random":
        return UniformScorer()
    if policy == "zero-shot":
        return LLMPolicy(BackendConfig(model=model), ValueHeadConfig())
    if checkpoint is None:
        raise SystemExit("llmrl eval: give a CHECKPOINT (or --policy random|zero-shot for the baselines)")
    from cluster.config import ConfigError
    from cluster.experiment import read_config
    from learners.ppo.algorithm import LEARNER_DIR
    from learners.ppo.learner import load_policy

    config = read_config(Path(checkpoint))
    if config.method != "glam":
        raise ConfigError(f"{checkpoint} is a checkpoint of a {config.method} run; llmrl eval plays GLAM policies")
    trained = LLMPolicy(config.backend, config.value_head)
    load_policy(trained, Path(checkpoint) / LEARNER_DIR)
    return trained


def evaluate(scorer, env_id: str, episodes: int, num_envs: int = 4, seed: int = 12345, greedy: bool = False,
             env_kwargs: dict | None = None) -> dict:
    """Run until `episodes` episodes finish; their success rate and mean return."""
    config = RunnerConfig(env_id=env_id, num_envs=min(num_envs, episodes), seed=seed, greedy=greedy,
                          env_kwargs=dict(env_kwargs or {}))
    finished = EnvRunner(config, scorer).play(episodes)
    return {"env": env_id, "episodes": episodes,
            "success_rate": sum(e.success for e in finished) / episodes,
            "mean_return": sum(e.ret for e in finished) / episodes,
            "mean_length": sum(e.length for e in finished) / episodes}


def run_eval(args) -> int:
    scorer = make_eval_policy(args.policy, args.checkpoint, args.model)
    result = evaluate(scorer, args.env, args.episodes, num_envs=args.num_envs, seed=args.seed, greedy=args.greedy)
    result["policy"] = args.policy if args.policy != "trained" else str(args.checkpoint)
    print(json.dumps(result))
    return 0

