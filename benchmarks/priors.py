"""`llmrl bench priors`: env steps to reach a success rate, DQN-Prior against the DQN baseline, same seeds,
same run, on text FrozenLake, a TextWorld game and the tomato-salad kitchen; learning curves as a PNG.

Arms: `dqn` (no LLM, every admissible action), `prior` (the LLM's k proposals, p_hat from counts),
`exact` (the LLM's softmax over every admissible action). Ablations: `--set proposals.k=...`, `--set dqn.tau=...`.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from benchmarks.common import add_overrides, machine_info, name_list

ENVS = {"frozenlake": "configs/prior_dqn_frozenlake.yaml", "textworld": "configs/prior_dqn_textworld.yaml",
        "overcooked": "configs/prior_dqn_overcooked.yaml"}
ARMS = {"dqn": ["dqn.use_prior=false"], "prior": ["dqn.prior=proposals"], "exact": ["dqn.prior=exact"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--envs", type=name_list(tuple(ENVS)), default=",".join(ENVS), help=f"subset of {tuple(ENVS)}")
    parser.add_argument("--arms", type=name_list(tuple(ARMS)), default=",".join(ARMS), help=f"subset of {tuple(ARMS)}")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (every arm runs each)")
    parser.add_argument("--env-steps", type=int, default=2000, help="env steps per run")
    parser.add_argument("--target", type=float, default=0.9, help="success rate (over train.success_window) to reach")
    parser.add_argument("--output-dir", default="runs/bench_priors")
    add_overrides(parser)
    parser.set_defaults(handler=run)


def steps_to_reach(rows: list[dict], target: float, window: int) -> float:
    """Env steps when the success rate over a full window of `window` episodes first reached `target` (inf if
    never); earlier rows average fewer episodes (a lucky first episode is a success rate of 1) and don't count."""
    for row in rows:
        if row["episodes"] >= window and row["success_rate"] is not None and row["success_rate"] >= target:
            return row["env_steps"]
    return math.inf


def summarise(results: list[dict], target: float) -> dict[str, dict[str, float]]:
    """Per env and arm: median steps to the target over seeds, how many seeds reached it, final success."""
    table: dict[str, dict[str, float]] = {}
    for key in dict.fromkeys((r["env"], r["arm"]) for r in results):
        runs = [r for r in results if (r["env"], r["arm"]) == key]
        steps = sorted(r["steps_to_target"] for r in runs)
        table[f"{key[0]}/{key[1]}"] = {"median_steps_to_target": steps[len(steps) // 2],
                                       "seeds_reached": sum(s < math.inf for s in steps), "seeds": len(runs),
                                       "final_success": sum(r["final_success"] for r in runs) / len(runs),
                                       "target": target}
    return table


def plot(results: list[dict], path: Path) -> None:
    """Success rate against env steps, one panel per env, one line per (arm, seed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    envs = list(dict.fromkeys(r["env"] for r in results))
    fig = Figure(figsize=(5 * len(envs), 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(envs), squeeze=False)[0]
    colours = {"dqn": "tab:grey", "prior": "tab:blue", "exact": "tab:orange"}
    for ax, env in zip(axes, envs):
        for r in (r for r in results if r["env"] == env):
            ax.plot(*zip(*r["curve"]), color=colours[r["arm"]], alpha=0.7,
                    label=r["arm"] if r["seed"] == results[0]["seed"] else None)
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.set_ylabel("success rate (window)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, format="png")


def run(args: argparse.Namespace) -> int:
    import torch

    from cluster.experiment import Experiment
    from cluster.methods import load_config
    from cluster.metrics import read_metrics

    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"machine": machine_info(torch.get_num_threads()), "envs": args.envs, "arms": args.arms,
                      "seeds": args.seeds, "env_steps": args.env_steps, "overrides": args.overrides}), flush=True)
    results = []
    for env in args.envs:
        for seed in (int(s) for s in args.seeds.split(",")):
            for arm in args.arms:
                overrides = [*ARMS[arm], f"train.seed={seed}", f"train.total_env_steps={args.env_steps}",
                             f"train.output_dir={output}", f"name={env}_{arm}_s{seed}", *args.overrides]
                config = load_config(ENVS[env], overrides)
                rows = read_metrics(Experiment(config, progress=False).run())
                result = {"env": env, "arm": arm, "seed": seed,
                          "steps_to_target": steps_to_reach(rows, args.target, config.train.success_window),
                          "final_success": rows[-1]["success_rate"],
                          "curve": [(r["env_steps"], r["success_rate"]) for r in rows]}
                results.append(result)
                print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)
    table = summarise(results, args.target)
    print(json.dumps(table, indent=1))
    (output / "results.json").write_text(json.dumps({"runs": results, "summary": table}, indent=1))
    plot(results, output / "curves.png")
    print(f"llmrl bench priors: results {output / 'results.json'}, plot {output / 'curves.png'}")
    return 0
