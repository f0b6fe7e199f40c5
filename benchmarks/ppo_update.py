"""`llmrl bench ppo-update`: what one PPO round costs the learner, old way against new, in one process.

- Update: seconds per PPO update with the old log-probs taken from the rollouts (`ppo.old_logprobs:
  rollout`) against recomputing them on the learner (`recompute`, one more forward pass per step),
  on one fixed batch of real rollouts, from the same starting weights. Arms: LoRA, full fine-tuning,
  and full fine-tuning of the top `--top-layers` blocks only (`backend.trainable_layers`); every arm
  updates on the same batch, and with the full arm present each arm's update is also given as a
  speed-up over it.
- Weight sync: seconds to publish the learner's weights to a scorer pool actor (the config's
  pool), handed over as a dict (the pool unpickles them and puts them in the object store
  again) against `StoredWeights` (put once by the learner, the reference passed on)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

from benchmarks.common import add_overrides, name_list

ARMS = ("ppo-lora", "ppo-full", "ppo-top")
MODES = ("recompute", "rollout")
SYNCS = ("dict", "stored")


def add_arm_arguments(parser: argparse.ArgumentParser) -> None:
    """--config (a GLAM run config), --set overrides, --arms and --full-lr: what builds each PPO arm."""
    parser.add_argument("--config", default="configs/glam_gotoredball_small.yaml",
                        help="run config whose runner, backend and PPO settings are timed")
    add_overrides(parser)
    parser.add_argument("--arms", type=name_list(ARMS), default=",".join(ARMS),
                        help=f"comma-separated subset of {ARMS} (full: LoRA off, --full-lr; top: full "
                             f"fine-tuning of the top --top-layers blocks)")
    parser.add_argument("--full-lr", type=float, default=5e-5, help="PPO lr of full fine-tuning")
    parser.add_argument("--top-layers", type=int, default=6, help="blocks trained by the ppo-top arm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_arm_arguments(parser)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per way (after one warm-up each)")
    parser.set_defaults(handler=run)


def speedup(seconds: dict[str, list[float]], old: str, new: str) -> dict[str, float]:
    """Median seconds per way and old / new (how many times faster the new way is)."""
    medians = {way: statistics.median(times) for way, times in seconds.items()}
    return {**{f"{way}_s": medians[way] for way in (old, new)}, "speedup": medians[old] / medians[new]}


def timed_update(policy, ppo, rollouts, start_weights, seed: int) -> float:
    """Seconds of one PPOLearner.update from the start weights (restored first, outside the timing)."""
    from learners.ppo.learner import PPOLearner

    policy.load_weights(start_weights, version=0)
    learner = PPOLearner(policy, ppo, seed=seed)
    begin = time.perf_counter()
    learner.update(rollouts)
    return time.perf_counter() - begin


def time_updates(policy, ppo, rollouts, repeats: int, seed: int) -> dict[str, list[float]]:
    """Seconds of PPOLearner.update per mode, alternating modes, each from the same weights."""
    start_weights = policy.get_weights()  # a snapshot: get_weights copies
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for repeat in range(repeats + 1):
        for mode in MODES:
            took = timed_update(policy, dataclasses.replace(ppo, old_logprobs=mode), rollouts, start_weights, seed)
            if repeat:  # the first round warms up
                seconds[mode].append(took)
    policy.load_weights(start_weights, version=0)
    return seconds


def time_syncs(config, policy, repeats: int) -> dict[str, list[float]]:
    """Seconds to publish the policy's weights to a scorer pool actor (as GLAM does), per way."""
    import ray

    from actors.scorer_pool import ScorerPool, StoredWeights
    from cluster.ray_runtime import ensure_ray

    ensure_ray(config.ray)
    pool = ray.remote(ScorerPool).options(num_cpus=0).remote(config.backend, config.pool, config.value_head)
    seconds: dict[str, list[float]] = {way: [] for way in SYNCS}
    try:
        for repeat in range(repeats + 1):
            for way in SYNCS:
                start = time.perf_counter()
                weights = policy.get_weights()
                ray.get(pool.load_weights.remote(StoredWeights.put(weights) if way == "stored" else weights, repeat))
                if repeat:
                    seconds[way].append(time.perf_counter() - start)
    finally:
        ray.get(pool.shutdown.remote())
        ray.kill(pool)
    return seconds


def run(args: argparse.Namespace) -> int:
    import torch

    from actors.env_runner import EnvRunner
    from benchmarks.common import machine_info, method_config
    from policies.llm_policy import LLMPolicy

    if args.repeats < 1:
        raise SystemExit(f"--repeats: must be at least 1, got {args.repeats}")
    if args.top_layers < 1:
        raise SystemExit(f"--top-layers: must be at least 1, got {args.top_layers}")
    base = method_config(args.config, args.overrides, "glam")
    print(json.dumps({"machine": machine_info(torch.get_num_threads()), "config": args.config,
                      "env": base.runner.env_id, "steps_per_update": base.steps_per_round, "epochs": base.ppo.epochs,
                      "minibatch_size": base.ppo.minibatch_size}), flush=True)
    rollouts, update_s = None, {}
    for arm in args.arms:
        config = arm_config(base, arm, args.full_lr, args.top_layers)
        policy = LLMPolicy(config.backend, config.value_head)
        if rollouts is None:  # every arm starts from the model's own weights: one batch serves them all
            runner = EnvRunner(config.runner, policy)
            rollouts = [runner.rollout(config.train.steps_per_update) for _ in range(config.num_runners)]
        updates = time_updates(policy, config.ppo, rollouts, args.repeats, config.train.seed)
        update_s[arm] = statistics.median(updates["rollout"])
        print(json.dumps({"arm": arm, "update": speedup(updates, *MODES), "seconds": updates}), flush=True)
        syncs = time_syncs(config, policy, args.repeats)
        print(json.dumps({"arm": arm, "weight_sync": speedup(syncs, *SYNCS), "seconds": syncs}), flush=True)
    if "ppo-full" in update_s:
        print(json.dumps({"update_speedup_over_full": {arm: update_s["ppo-full"] / s for arm, s in update_s.items()},
                          "old_logprobs": "rollout"}), flush=True)
    return 0


def arm_config(base, arm: str, full_lr: float, top_layers: int):
    """The run config of one arm; ppo-top is ppo-full with only the top `top_layers` blocks trained."""
    from benchmarks.common import ppo_config

    config = ppo_config(base, "ppo-full" if arm == "ppo-top" else arm, base.runner, base.train.total_env_steps,
                        base.train.output_dir, full_lr)
    if arm != "ppo-top":
        return config
    return dataclasses.replace(config, name=arm, backend=dataclasses.replace(config.backend, trainable_layers=top_layers))

