"""`llmrl eval`: success rate and mean return of a trained checkpoint, or of the random / zero-shot baselines."""
from __future__ import annotations

import json
from pathlib import Path

from actors.env_runner import EnvRunner, RunnerConfig
from cluster.cli import UsageError
from learners.rollout import Episode
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
        zero_shot = LLMPolicy(BackendConfig(model=model), ValueHeadConfig())
        zero_shot.freeze()
        return zero_shot
    if checkpoint is None:
        raise UsageError("give a CHECKPOINT (or --policy random|zero-shot for the baselines)")
    from cluster.config import ConfigError
    from cluster.experiment import read_config
    from learners.ppo.algorithm import LEARNER_DIR
    from learners.ppo.learner import load_policy

    config = read_config(Path(checkpoint))
    if config.method != "glam":
        raise ConfigError(f"{checkpoint} is a checkpoint of a {config.method} run; llmrl eval plays GLAM policies")
    trained = LLMPolicy(config.backend, config.value_head)
    trained.freeze()
    load_policy(trained, Path(checkpoint) / LEARNER_DIR)
    return trained


def play_episodes(scorer, env_id: str, episodes: int, num_envs: int = 4, seed: int = 12345, greedy: bool = False,
                  env_kwargs: dict | None = None) -> list[Episode]:
    """`episodes` episodes on `num_envs` envs of `env_id` seeded from `seed` (each env its fixed quota, the
    first ones it plays: EnvRunner.play)."""
    config = RunnerConfig(env_id=env_id, num_envs=min(num_envs, episodes), seed=seed, greedy=greedy,
                          env_kwargs=dict(env_kwargs or {}))
    return EnvRunner(config, scorer).play(episodes)


def evaluate(scorer, env_id: str, episodes: int, num_envs: int = 4, seed: int = 12345, greedy: bool = False,
             env_kwargs: dict | None = None) -> dict:
    """Run until `episodes` episodes finish; their success rate and mean return."""
    finished = play_episodes(scorer, env_id, episodes, num_envs, seed, greedy, env_kwargs)
    return {"env": env_id, "episodes": episodes,
            "success_rate": sum(e.success for e in finished) / episodes,
            "mean_return": sum(e.ret for e in finished) / episodes,
            "mean_length": sum(e.length for e in finished) / episodes}


def run_eval(args) -> int:
    if args.suite:
        return run_suite_command(args)
    if not args.env:
        raise UsageError("give --env ENV_ID (one env) or --suite NAME (a set of tests, e.g. --suite glam)")
    scorer = make_eval_policy(args.policy, args.checkpoint, args.model)
    result = evaluate(scorer, args.env, args.episodes or 20, num_envs=args.num_envs, seed=args.seed,
                      greedy=args.greedy)
    result["policy"] = args.policy if args.policy != "trained" else str(args.checkpoint)
    print(json.dumps(result))
    return 0


def run_suite_command(args) -> int:
    """`llmrl eval [CHECKPOINT] --suite S`: the suite's table (module cluster/eval_suite.py), CSV and chart."""
    from cluster.eval_suite import format_table, load_suite, plot_rows, run_run_suite, run_suite, write_csv

    suite = load_suite(args.suite)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = output / f"eval_{suite.name}.csv", output / f"eval_{suite.name}.png"
    done: list = []

    def keep(row) -> None:
        """Each row is written as soon as it is done, so an interrupted suite keeps what it measured."""
        done.append(row)
        write_csv(done, csv_path)
        print(f"llmrl eval: {row.test} / {row.policy}: success {row.success_rate:.2f}, mean return "
              f"{row.mean_return:.2f} ({row.episodes} episodes); {len(done)} rows in {csv_path}", flush=True)

    if suite.runs:
        if args.checkpoint is not None:
            raise UsageError(f"suite {suite.name} runs its configs from scratch; give no CHECKPOINT")
        names = _policy_names(args.policies, list(suite.policies))
        rows = run_run_suite(suite, names, output / f"runs_{suite.name}", on_row=keep)
    else:
        names = _policy_names(args.policies or "trained,random,zero-shot", ["trained", "random", "zero-shot"])
        if "trained" in names and args.checkpoint is None:
            raise UsageError("--suite with the trained policy needs a CHECKPOINT (or --policies random,zero-shot)")
        training = None
        if args.checkpoint is not None:
            from cluster.experiment import read_config

            runner = read_config(Path(args.checkpoint)).runner
            training = (runner.env_id, dict(runner.env_kwargs))
        policies = {p: make_eval_policy(p, args.checkpoint, args.model) for p in names}
        rows = run_suite(suite, policies, training, episodes=args.episodes, on_row=keep)
    plot_rows(rows, png_path, f"{suite.name}: {args.checkpoint or 'from scratch'}", suite.plot)
    print(format_table(rows))
    print(f"llmrl eval: suite {suite.name}, {rows[0].episodes} episodes per row over seeds "
          f"{', '.join(map(str, suite.seeds))}; table {csv_path}, chart {png_path}")
    return 0


def _policy_names(given: str | None, known: list[str]) -> list[str]:
    """The --policies asked for (default: every known one), each checked."""
    names = [p.strip() for p in given.split(",") if p.strip()] if given else known
    unknown = [p for p in names if p not in known]
    if unknown or not names:
        raise UsageError(f"--policies {given}: choose among {', '.join(known)} (comma-separated)")
    return names
