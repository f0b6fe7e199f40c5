"""`llmrl bench glam`: success rate against env steps on a BabyAI-Text task for PPO-LLM (LoRA and full
fine-tuning) beside the random and zero-shot baselines, and the whole system's env steps/s with the
per-phase split (scoring, env stepping, PPO update, weight sync). All arms in one run, same seeds."""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from benchmarks.common import add_overrides, name_list, ppo_config

ARMS = ("ppo-lora", "ppo-full", "random", "zero-shot")
PHASES = ("scoring", "env_step", "update", "weight_sync")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="configs/glam_babyai.yaml", help="base run config of the PPO arms")
    add_overrides(parser)
    parser.add_argument("--env", default=None, help="registered env id (default: runner.env_id of --config)")
    parser.add_argument("--env-kwargs", type=json.loads, default=None, metavar="JSON",
                        help="keyword arguments of the env (default: runner.env_kwargs of --config), e.g. '{}'")
    parser.add_argument("--env-steps", type=int, default=2048, help="training env steps per PPO arm")
    parser.add_argument("--eval-episodes", type=int, default=40, help="episodes of each baseline")
    parser.add_argument("--arms", type=name_list(ARMS), default=",".join(ARMS),
                        help=f"comma-separated subset of {ARMS}")
    parser.add_argument("--full-lr", type=float, default=1e-5, help="PPO lr of full fine-tuning")
    parser.add_argument("--output-dir", default="runs/bench_glam")
    parser.add_argument("--checkpoint-every", type=int, default=4, help="PPO updates between checkpoints of an arm")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted benchmark in --output-dir: finished arms (results.json) are "
                             "kept, PPO arms go on from their latest checkpoint up to --env-steps")
    parser.set_defaults(handler=run)


def bench_runner(base, env_id: str | None, env_kwargs: dict | None):
    """The base config's runner on `env_id` with `env_kwargs` (None: the base config's)."""
    kwargs = base.runner.env_kwargs if env_kwargs is None else env_kwargs
    return dataclasses.replace(base.runner, env_id=env_id or base.runner.env_id, env_kwargs=dict(kwargs))


def throughput(rows: list[dict]) -> dict[str, float]:
    """Env steps/s over a run and the share of wall time per phase (from the metrics rows)."""
    wall = sum(r["round_env_steps"] / r["steps_per_s"] for r in rows)
    spent = {p: sum(r[f"time_{p}_s"] for r in rows) for p in PHASES}
    return {"env_steps_per_s": sum(r["round_env_steps"] for r in rows) / wall, "wall_s": wall,
            **{f"share_{p}": spent[p] / wall for p in PHASES}}


def curve(rows: list[dict]) -> list[tuple[int, float]]:
    """(env steps, success rate over the last train.success_window episodes) after each update."""
    return [(int(r["env_steps"]), r["success_rate"]) for r in rows]


def finished(result: dict, env_steps: int) -> bool:
    """Whether an arm's recorded result is complete: a baseline, or a PPO arm that reached env_steps."""
    return "curve" not in result or (bool(result["curve"]) and result["curve"][-1][0] >= env_steps)


def config_changes(stored, config) -> list[str]:
    """The config sections where `config` differs from a run's `stored` one, its env-step budget aside."""
    from cluster.config import to_dict

    def sections(c):
        data = to_dict(c)
        del data["train"]["total_env_steps"]
        return data

    old, new = sections(stored), sections(config)
    return [key for key in new if old.get(key) != new[key]]


def run_ppo_arm(config, resume: bool = False) -> dict:
    """Train one arm in OUTPUT_DIR/ARM (resume: from its latest checkpoint there, if any)."""
    from cluster.checkpoint import latest_checkpoint
    from cluster.experiment import Experiment, read_config

    run_dir = Path(config.train.output_dir) / config.name
    if not (resume and run_dir.exists()):
        return _arm_result(Experiment(config, progress=False).run())
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise SystemExit(f"llmrl bench glam --resume: {run_dir} has no checkpoint (it stopped before its first); "
                         f"delete it to start {config.name} again")
    changed = config_changes(read_config(run_dir), config)
    if changed:
        raise SystemExit(f"llmrl bench glam --resume: {config.name} in {run_dir} was started with other settings "
                         f"({', '.join(changed)}); rerun with its original arguments or use another --output-dir")
    print(f"{config.name}: resuming {run_dir} from {checkpoint.name}", flush=True)
    return _arm_result(Experiment(config, run_dir=run_dir, progress=False).run())


def _arm_result(run_dir: Path) -> dict:
    """A finished PPO arm's curve and throughput, from its metrics."""
    from cluster.metrics import read_metrics

    rows = read_metrics(run_dir)
    return {"curve": curve(rows), **throughput(rows), "run_dir": str(run_dir)}


def run_baseline(arm: str, runner, episodes: int, model: str) -> dict:
    from cluster.eval_command import evaluate, make_eval_policy

    start = time.perf_counter()
    result = evaluate(make_eval_policy(arm, None, model), runner.env_id, episodes, seed=runner.seed,
                      env_kwargs=runner.env_kwargs)
    return {**result, "wall_s": time.perf_counter() - start}


def _title(runner) -> str:
    kwargs = ", ".join(f"{k}={v}" for k, v in runner.env_kwargs.items())
    return f"{runner.env_id} ({kwargs})" if kwargs else runner.env_id


def plot(results: dict, path: Path, title: str, window: int) -> None:
    """Success against env steps per PPO arm (over the last `window` episodes), baselines as lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for arm, result in results.items():
        if "curve" in result:
            ax.plot(*zip(*result["curve"]), marker=".", label=arm)
        else:
            ax.axhline(result["success_rate"], linestyle="--", label=arm, color="grey" if arm == "random" else "k")
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"success rate (last {window} episodes)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, format="png")


def run(args: argparse.Namespace) -> int:
    import torch

    from benchmarks.common import machine_info, method_config

    base = method_config(args.config, args.overrides, "glam")
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    runner = bench_runner(base, args.env, args.env_kwargs)
    print(json.dumps({"machine": machine_info(torch.get_num_threads()),
                      "env": runner.env_id, "env_kwargs": runner.env_kwargs, "env_steps": args.env_steps,
                      "model": base.backend.model}))
    results_path = output / "results.json"
    results = json.loads(results_path.read_text()) if args.resume and results_path.is_file() else {}
    for arm in args.arms:
        if arm in results and finished(results[arm], args.env_steps):
            print(f"{arm}: kept from {results_path}", flush=True)
            continue
        if arm.startswith("ppo"):
            config = ppo_config(base, arm, runner, args.env_steps, str(output), args.full_lr, args.checkpoint_every)
            results[arm] = run_ppo_arm(config, resume=args.resume)
        else:
            results[arm] = run_baseline(arm, runner, args.eval_episodes, base.backend.model)
        print(json.dumps({"arm": arm, **results[arm]}), flush=True)
        results_path.write_text(json.dumps(results, indent=1))
    plot(results, output / "learning_curves.png", _title(runner), base.train.success_window)
    print(f"llmrl bench glam: results {output / 'results.json'}, plot {output / 'learning_curves.png'}")
    return 0
