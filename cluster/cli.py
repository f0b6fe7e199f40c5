"""The `llmrl` command."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from cluster.ray_runtime import RayConfig


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="smollm2-135m",
                        help="bundled model name (smollm2-135m), local transformers directory, or hub id")
    parser.add_argument("--backend", default="transformers", choices=["transformers", "vllm"])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (auto or HOST:PORT); default: an embedded local Ray")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmrl", description="RL with language-model policies on Ray")
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="log-probs of candidate strings given contexts, from JSONL")
    _add_model_args(score)
    score.add_argument("--input", required=True, help='JSONL file, one {"context": str, "candidates": [str]} a line '
                                                      "('-' for stdin)")
    score.add_argument("--output", default="-", help="where to write the JSONL answers (default: stdout)")
    score.add_argument("--workers", type=int, default=1,
                       help="scorer workers (Ray actors); 0 scores in this process without Ray")
    score.add_argument("--cpus-per-worker", type=float, default=1.0, help="Ray CPUs reserved per worker")
    score.add_argument("--mean", action="store_true", help="per-token mean log-prob instead of the sum")
    score.add_argument("--batch-size", type=int, default=64, help="lines per scoring request")
    score.set_defaults(handler=_score)

    run = commands.add_parser("run", help="run a YAML config of any method (method: glam | icpi)")
    run.add_argument("config", nargs="?", default=None,
                     help="run config (YAML; default configs/glam_babyai.yaml unless --resume is given)")
    run.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                     help="override a config value by its dotted key, e.g. --set ppo.lr=1e-5 (repeatable; with "
                          "--resume: applied to the run's stored config, e.g. train.total_env_steps)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)

    tune = commands.add_parser("tune", help="a Ray Tune sweep over a run config (grid / random search, ASHA, PBT)")
    tune.add_argument("sweep", help="sweep YAML (see configs/tune/ and cluster/sweep_config.py)")
    tune.add_argument("--resume", action="store_true",
                      help="continue the interrupted sweep in OUTPUT_DIR/NAME (errored trials from their checkpoints)")
    tune.add_argument("--no-progress", action="store_true", help="no trial status tables while it runs")
    tune.set_defaults(handler=_tune)

    collect = commands.add_parser("collect", help="write an offline dataset (for CQL-Prior) from a behaviour policy")
    collect.add_argument("config", help="collect config (YAML), e.g. configs/collect/frozenlake.yaml")
    collect.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                         help="override a collect config value by its dotted key, e.g. --set behaviour=llm "
                              "(repeatable)")
    collect.set_defaults(handler=lambda args: _lazy("learners.cql_prior.collect", "collect_command")(args))

    plan = commands.add_parser("plan", help="where a run's actors would go on a cluster (starts nothing)")
    plan.add_argument("config", help="run config (YAML)")
    plan.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                      help="override a config value by its dotted key (repeatable), as with llmrl run")
    plan.add_argument("--cluster", default=None, metavar="YAML",
                      help="a Ray cluster-launcher config (e.g. ray_config.yaml): its node types at full size")
    plan.add_argument("--nodes", default=None, metavar="SPEC",
                      help='node types as COUNTxRESOURCES, e.g. "1x8CPU,2x8CPU+8GPU" (default: this machine)')
    plan.add_argument("--json", action="store_true", help="the plan as JSON")
    plan.set_defaults(handler=lambda args: print(_lazy("cluster.plan", "plan_command")(
        args.config, args.overrides, args.cluster, args.nodes, args.json)) or 0)

    submit = commands.add_parser("submit", help="run a config as a Ray Job on a cluster (llmrl run, remotely)")
    submit.add_argument("config", help="run config (YAML) inside this repository, which the job uploads")
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config value by its dotted key (repeatable), as with llmrl run")
    _add_jobs_address(submit)
    submit.add_argument("--python", default=None, metavar="PATH",
                        help="the interpreter (with this project installed) the job runs on the head (default: this "
                             "one, right for a local head); on a cluster from ray_config.yaml: "
                             "'~/llmrl-venv/bin/python'")
    submit.set_defaults(handler=_submit)

    jobs = commands.add_parser("jobs", help="list, inspect, follow or stop Ray Jobs (llmrl submit's runs)")
    job_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    _add_jobs_address(job_commands.add_parser("list", help="every job of the cluster, oldest first"))
    for name, help_text in (("status", "a job's status and message"), ("logs", "a job's output so far"),
                            ("stop", "stop a running job")):
        sub = job_commands.add_parser(name, help=help_text)
        sub.add_argument("job_id", metavar="ID", help="the submission id llmrl submit printed")
        _add_jobs_address(sub)
        if name == "logs":
            sub.add_argument("--follow", action="store_true",
                             help="stream the logs until the job ends; exit status 0 only if it SUCCEEDED")
    jobs.set_defaults(handler=_jobs)

    scale = commands.add_parser("scale", help="change the scorer-worker count of a running run (use_ray: true)")
    scale.add_argument("target", metavar="RUN_DIR_OR_JOB", help="a running run's directory, or the id of a Ray Job "
                                                                "started by llmrl submit")
    scale.add_argument("--scorers", type=int, required=True, metavar="N", help="the scorer workers to have")
    scale.add_argument("--address", default=None,
                       help="with a RUN_DIR: the Ray GCS address (default: the one in RUN_DIR/ray.json); with a job "
                            "id: the cluster's dashboard, as for llmrl jobs")
    scale.add_argument("--python", default=None, metavar="PATH",
                       help="with a job id: the interpreter the scale job runs on the head, as for llmrl submit")
    scale.set_defaults(handler=lambda args: _lazy("cluster.scale", "scale_command")(args))

    evaluation = commands.add_parser("eval", help="success rate and mean return of a checkpoint or a baseline")
    evaluation.add_argument("checkpoint", nargs="?", default=None,
                            help="a checkpoint directory written by llmrl run (RUN_DIR/checkpoints/checkpoint_N)")
    evaluation.add_argument("--env", default=None, help="registered env id, e.g. llmrl/BabyAI-GoToRedBall-v0")
    evaluation.add_argument("--suite", default=None, metavar="NAME|YAML",
                            help="a set of tests instead of one env: glam (GLAM's generalization tests; "
                                 "configs/eval/) or a suite YAML; writes a CSV and a bar chart")
    evaluation.add_argument("--policies", default=None,
                            help="with --suite: the rows to evaluate, comma-separated (default: trained,random,"
                                 "zero-shot for checkpoint suites, every policy of a run suite)")
    evaluation.add_argument("--output-dir", default="runs/eval", help="with --suite: where the CSV and PNG go")
    evaluation.add_argument("--episodes", type=int, default=None,
                            help="episodes (default 20; with --suite: per test and seed, default the suite's)")
    evaluation.add_argument("--policy", default="trained", choices=["trained", "random", "zero-shot"])
    evaluation.add_argument("--model", default="smollm2-135m", help="the LLM of the zero-shot baseline")
    evaluation.add_argument("--num-envs", type=int, default=4)
    evaluation.add_argument("--seed", type=int, default=12345)
    evaluation.add_argument("--greedy", action="store_true", help="argmax actions instead of sampling")
    evaluation.set_defaults(handler=lambda args: _lazy("cluster.eval_command", "run_eval")(args))

    compare = commands.add_parser("compare", help="overlay learning curves of runs (mean and spread per group)")
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories written by llmrl run")
    compare.add_argument("--x", default="env_steps", help="metrics column on the x axis (default env_steps)")
    compare.add_argument("--y", default="success_rate", help="metrics column compared (default success_rate)")
    compare.add_argument("--group-by", default="name", metavar="KEY",
                         help="runs sharing this config key are one curve (mean, min-max band): name (default), "
                              "method, any dotted key such as ppo.lr, several comma-separated keys, or dir (each run alone)")
    compare.add_argument("--threshold", type=float, default=None,
                         help="also report the first x where a group's mean reaches this value")
    compare.add_argument("--output", default="compare.png", help="where to write the PNG (default compare.png)")
    compare.set_defaults(handler=lambda args: _lazy("cluster.compare", "compare_command")(args))

    bench = commands.add_parser("bench", help="benchmarks that print figures")
    benches = bench.add_subparsers(dest="bench", required=True)
    from benchmarks.score import add_arguments as add_bench_score

    add_bench_score(benches.add_parser("score", help="action-scores/s: naive vs shared-prefix vs pool"))
    from benchmarks.vllm_engine import add_arguments as add_bench_vllm

    add_bench_vllm(benches.add_parser("vllm", help="vLLM vs transformers: generation tokens/s, scoring actions/s"))
    from benchmarks.icpi import add_arguments as add_bench_icpi

    add_bench_icpi(benches.add_parser("icpi", help="ICPI: lockstep vs sequential round trips; regret on six envs"))
    from benchmarks.glam import add_arguments as add_bench_glam

    add_bench_glam(benches.add_parser("glam", help="learning curves (PPO LoRA/full, random, zero-shot), steps/s"))
    from benchmarks.ppo_update import add_arguments as add_bench_ppo_update

    add_bench_ppo_update(benches.add_parser("ppo-update",
                                            help="PPO update and weight sync: new way vs old, same run"))
    from benchmarks.glam_round import add_arguments as add_bench_glam_round

    add_bench_glam_round(benches.add_parser("glam-round",
                                            help="GLAM round (scoring + PPO update) per dtype vs the matmul limit"))
    from benchmarks.priors import add_arguments as add_bench_priors

    add_bench_priors(benches.add_parser("priors", help="DQN-Prior vs DQN: env steps to a success rate, curves"))
    from benchmarks.scaling import add_arguments as add_bench_scaling

    add_bench_scaling(benches.add_parser("scaling", help="scorer throughput with 1, 2, 4 workers; time to join"))
    return parser


def _lazy(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


def _run(args: argparse.Namespace) -> int:
    from cluster.experiment import Experiment, read_config
    from cluster.methods import load_config

    if args.resume and args.config:
        raise UsageError("give a CONFIG or --resume RUN_DIR, not both (a resumed run keeps its stored config; "
                         "change values with --set)")
    if args.resume:
        run_dir = Path(args.resume)
        experiment = Experiment(read_config(run_dir, args.overrides), run_dir=run_dir, progress=not args.no_progress)
    else:
        config = load_config(args.config or "configs/glam_babyai.yaml", args.overrides)
        experiment = Experiment(config, progress=not args.no_progress)
    run_dir = experiment.run()
    summary = json.loads((run_dir / "summary.json").read_text())
    plots = [str(run_dir / p.filename) for p in _plots_of(experiment.config.method)]
    print(f"llmrl run: done ({json.dumps(summary)}). metrics {run_dir / 'metrics.csv'}, tensorboard "
          f"{run_dir / 'tensorboard'}, plots {', '.join(plots)}, checkpoints {run_dir / 'checkpoints'}, "
          f"summary {run_dir / 'summary.json'}")
    if summary.get("success_rate_first") is not None:
        print(learning_line(summary, plots[0]))
    return 0


def learning_line(summary: dict, curve: str) -> str:
    """What a run learned, in one line: success over its first and last episodes beside a random policy's."""
    def shown(key: str) -> str:
        return "-" if summary.get(key) is None else f"{summary[key]:.2f}"

    n = summary["success_window"]
    random = (f"; a random policy: {shown('random_success_rate')} over {summary['random_episodes']} episodes"
              if "random_success_rate" in summary else "")
    return (f"success rate: {shown('success_rate_first')} over the first {n} episodes, {shown('success_rate')} over "
            f"the last {n} ({summary['episodes']} episodes, {summary['env_steps']} env steps){random}. "
            f"Learning curve: {curve}")


def _tune(args: argparse.Namespace) -> int:
    from cluster.tune import run_sweep

    results = run_sweep(args.sweep, resume=args.resume, progress=not args.no_progress)
    return 0 if results.rows and all(r["status"] == "TERMINATED" for r in results.rows) else 1


def _add_jobs_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=None, metavar="URL",
                        help="the cluster's dashboard, e.g. http://HEAD:8265 (default: RAY_ADDRESS, else "
                             "http://127.0.0.1:8265); token from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token")


def _submit(args: argparse.Namespace) -> int:
    from cluster.jobs import JobsError, describe_submission, normalize_address, submit

    try:
        plan = submit(args.config, args.overrides, address=args.address, python=args.python)
        print(describe_submission(plan, normalize_address(args.address)))
    except JobsError as e:
        raise UsageError(str(e)) from None
    return 0


def _jobs(args: argparse.Namespace) -> int:
    from cluster.jobs import Jobs, JobsError, describe_jobs

    try:
        jobs = Jobs(args.address)
        if args.jobs_command == "list":
            print(describe_jobs(jobs.list()))
        elif args.jobs_command == "status":
            info = jobs.status(args.job_id)
            print(f"{args.job_id}: {info.status.value}" + (f" ({info.message})" if info.message else ""))
        elif args.jobs_command == "logs" and args.follow:
            status = jobs.follow(args.job_id)
            print(f"llmrl jobs: {args.job_id} {status}", file=sys.stderr)
            return 0 if status == "SUCCEEDED" else 1
        elif args.jobs_command == "logs":
            print(jobs.logs(args.job_id), end="")
        else:
            print(f"{args.job_id}: " + ("stop requested" if jobs.stop(args.job_id) else
                                        f"already ended ({jobs.status(args.job_id).status.value})"))
    except JobsError as e:
        raise UsageError(str(e)) from None
    return 0


def _plots_of(method: str):
    from cluster.methods import algorithm_class

    return algorithm_class(method).plots


def _score(args: argparse.Namespace) -> int:
    from actors.pool_config import PoolConfig
    from cluster.runtime import make_runtime
    from cluster.score_command import score_lines
    from policies.config import BackendConfig

    if args.workers < 0:
        raise UsageError(f"--workers {args.workers}: give 0 (in-process) or a positive number of workers")
    if args.input != "-" and not Path(args.input).is_file():
        raise UsageError(f"input file {args.input} does not exist")
    config = BackendConfig(model=args.model, backend=args.backend, device=args.device, dtype=args.dtype)
    runtime = make_runtime(args.workers > 0, RayConfig(address=args.address))
    scorer = runtime.scorer(config, PoolConfig(num_workers=max(args.workers, 1), cpus_per_worker=args.cpus_per_worker))
    try:
        with contextlib.ExitStack() as stack:
            source = sys.stdin if args.input == "-" else stack.enter_context(open(args.input))
            sink = sys.stdout if args.output == "-" else stack.enter_context(open(args.output, "w"))
            bad = score_lines(scorer, source, sink, mean=args.mean, batch_size=args.batch_size)
    finally:
        if hasattr(scorer, "shutdown"):
            scorer.shutdown()
    if bad:
        print(f"llmrl score: {bad} line(s) could not be scored (see the errors above); the others were",
              file=sys.stderr)
    return 1 if bad else 0


class UsageError(Exception):
    """A command line that cannot run; the message says why and what to give instead."""


def main(argv: list[str] | None = None) -> int:
    """Run a command; a config or usage error prints one message (no traceback) and exits with 2."""
    from cluster.checkpoint import CheckpointError
    from cluster.config import ConfigError
    from learners.state_io import StateFormatError
    from policies.models import ModelNotFoundError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, UsageError, CheckpointError, StateFormatError, ModelNotFoundError) as e:
        print(f"llmrl {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
