"""`llmrl bench ppo-update`: seconds per PPO update with the old log-probs taken from the rollouts
(`ppo.old_logprobs: rollout`) against recomputing them on the learner (`recompute`, one more forward
pass per step), on one fixed batch of real rollouts, same starting weights, both in one process."""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

from cluster.name_lists import name_list

ARMS = ("ppo-lora", "ppo-full")
MODES = ("recompute", "rollout")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="configs/glam_gotoredball_small.yaml",
                        help="run config whose runner, backend and PPO settings are timed")
    parser.add_argument("--arms", type=name_list(ARMS), default=",".join(ARMS),
                        help=f"comma-separated subset of {ARMS} (full: LoRA off, --full-lr)")
    parser.add_argument("--full-lr", type=float, default=5e-5, help="PPO lr of full fine-tuning")
    parser.add_argument("--repeats", type=int, default=3, help="timed updates per mode (after one warm-up each)")
    parser.set_defaults(handler=run)


def speedup(seconds: dict[str, list[float]]) -> dict[str, float]:
    """Median seconds per update per mode and recompute / rollout (how much faster rollout is)."""
    medians = {mode: statistics.median(times) for mode, times in seconds.items()}
    return {**{f"{mode}_s": medians[mode] for mode in MODES}, "speedup": medians["recompute"] / medians["rollout"]}


def time_updates(policy, ppo, rollouts, repeats: int, seed: int) -> dict[str, list[float]]:
    """Seconds of PPOLearner.update per mode, alternating modes, each from the same weights."""
    from learners.ppo import PPOLearner

    start_weights = {k: v.clone() for k, v in policy.get_weights().items()}
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for repeat in range(repeats + 1):
        for mode in MODES:
            policy.load_weights(start_weights, version=0)
            learner = PPOLearner(policy, dataclasses.replace(ppo, old_logprobs=mode), seed=seed)
            start = time.perf_counter()
            learner.update(rollouts)
            if repeat:  # the first round warms up
                seconds[mode].append(time.perf_counter() - start)
    policy.load_weights(start_weights, version=0)
    return seconds


def run(args: argparse.Namespace) -> int:
    import torch

    from actors.env_runner import EnvRunner
    from cluster.bench_glam import ppo_config
    from cluster.bench_score import machine_info
    from cluster.config import load_yaml
    from cluster.run_config import RunConfig
    from policies.llm_policy import LLMPolicy

    if args.repeats < 1:
        raise SystemExit(f"--repeats: must be at least 1, got {args.repeats}")
    base = load_yaml(RunConfig, args.config)
    print(json.dumps({"machine": machine_info(torch.get_num_threads()), "config": args.config,
                      "env": base.runner.env_id, "steps_per_update": base.steps_per_round, "epochs": base.ppo.epochs,
                      "minibatch_size": base.ppo.minibatch_size}), flush=True)
    for arm in args.arms:
        config = ppo_config(base, arm, base.runner, base.train.total_env_steps, base.train.output_dir, args.full_lr)
        policy = LLMPolicy(config.backend, config.value_head)
        runner = EnvRunner(config.runner, policy)
        rollouts = [runner.rollout(config.train.steps_per_update) for _ in range(config.num_runners)]
        seconds = time_updates(policy, config.ppo, rollouts, args.repeats, config.train.seed)
        print(json.dumps({"arm": arm, **speedup(seconds), "seconds": seconds}), flush=True)
    return 0

