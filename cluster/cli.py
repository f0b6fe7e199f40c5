"""The `llmrl` command."""
from __future__ import annotations

import argparse
import contextlib
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

    run = commands.add_parser("run", help="train from a YAML config (GLAM: PPO on BabyAI-Text; method: icpi: ICPI)")
    run.add_argument("config", nargs="?", default="configs/glam_babyai.yaml", help="run config (YAML)")
    run.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)

    evaluation = commands.add_parser("eval", help="success rate and mean return of a checkpoint or a baseline")
    evaluation.add_argument("checkpoint", nargs="?", default=None, help="a checkpoint file written by llmrl run")
    evaluation.add_argument("--env", required=True, help="registered env id, e.g. llmrl/BabyAI-GoToRedBall-v0")
    evaluation.add_argument("--episodes", type=int, default=20)
    evaluation.add_argument("--policy", default="trained", choices=["trained", "random", "zero-shot"])
    evaluation.add_argument("--model", default="smollm2-135m", help="the LLM of the zero-shot baseline")
    evaluation.add_argument("--num-envs", type=int, default=4)
    evaluation.add_argument("--seed", type=int, default=12345)
    evaluation.add_argument("--greedy", action="store_true", help="argmax actions instead of sampling")
    evaluation.set_defaults(handler=lambda args: _lazy("cluster.eval_command", "run_eval")(args))

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
    return parser


def _lazy(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


def _run(args: argparse.Namespace) -> int:
    from cluster.config import load_yaml
    from learners.ppo.algorithm import GlamJob, load_run_config
    from learners.icpi.run_config import config_method
    from learners.ppo.run_config import RunConfig

    if not args.resume and config_method(args.config) == "icpi":
        from learners.icpi.algorithm import run_icpi_config

        return run_icpi_config(args.config, progress=not args.no_progress)
    if args.resume:
        run_dir = Path(args.resume)
        job = GlamJob(load_run_config(run_dir), run_dir=run_dir, progress=not args.no_progress)
    else:
        job = GlamJob(load_yaml(RunConfig, args.config), progress=not args.no_progress)
    run_dir = job.run()
    print(f"llmrl run: done. metrics {run_dir / 'metrics.csv'}, tensorboard {run_dir / 'tensorboard'}, "
          f"curves {run_dir / 'curves.png'}, checkpoints {run_dir / 'checkpoints'}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from cluster.score_command import score_lines
    from policies.config import BackendConfig

    config = BackendConfig(model=args.model, backend=args.backend, device=args.device, dtype=args.dtype)
    if args.input != "-" and not Path(args.input).is_file():
        print(f"llmrl score: input file {args.input} does not exist", file=sys.stderr)
        return 2
    scorer = _make_scorer(config, args.workers, args.cpus_per_worker, RayConfig(address=args.address))
    with contextlib.ExitStack() as stack:
        source = sys.stdin if args.input == "-" else stack.enter_context(open(args.input))
        sink = sys.stdout if args.output == "-" else stack.enter_context(open(args.output, "w"))
        bad = score_lines(scorer, source, sink, mean=args.mean, batch_size=args.batch_size)
    if bad:
        print(f"llmrl score: {bad} line(s) could not be scored (see the errors above); the others were",
              file=sys.stderr)
    return 1 if bad else 0


def _make_scorer(config, workers: int, cpus_per_worker: float, ray_config: RayConfig):
    """An in-process backend (workers == 0) or a Ray scorer pool."""
    if workers < 0:
        raise SystemExit(f"--workers {workers}: give 0 (in-process) or a positive number of workers")
    if workers == 0:
        from policies.backend import make_backend

        return make_backend(config)
    from actors.scorer_pool import PoolConfig, ScorerPool
    from cluster.ray_runtime import ensure_ray

    ensure_ray(ray_config)
    return ScorerPool(config, PoolConfig(num_workers=workers, cpus_per_worker=cpus_per_worker))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
