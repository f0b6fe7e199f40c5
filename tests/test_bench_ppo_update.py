"""The PPO-update benchmark: its ratio, and timed updates that start from the same weights each time."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from actors.env_runner import EnvRunner, RunnerConfig
from benchmarks.common import method_config
from benchmarks.ppo_update import arm_config, speedup, time_updates
from cluster.cli import build_parser
from learners.ppo.config import PPOConfig
from policies.config import BackendConfig, LoraConfig
from policies.llm_policy import LLMPolicy
from policies.value_head import ValueHeadConfig


def test_speedup_is_old_over_new_medians():
    figures = speedup({"recompute": [3.0, 9.0, 4.0], "rollout": [2.0, 1.0, 8.0]}, "recompute", "rollout")
    assert figures == {"recompute_s": 4.0, "rollout_s": 2.0, "speedup": 2.0}


def test_timed_updates_start_from_the_same_weights_and_leave_them_unchanged():
    torch.manual_seed(0)
    policy = LLMPolicy(BackendConfig(lora=LoraConfig(r=4)), ValueHeadConfig(hidden_sizes=(16,)))
    rollout = EnvRunner(RunnerConfig(env_id="llmrl/TextChoice-v0", num_envs=2, seed=0), policy).rollout(2)
    before = {k: v.clone() for k, v in policy.get_weights().items()}
    seconds = time_updates(policy, PPOConfig(lr=1e-2, epochs=1, minibatch_size=4), [rollout], repeats=2, seed=0)
    assert {mode: len(times) for mode, times in seconds.items()} == {"recompute": 2, "rollout": 2}
    assert all(t > 0 for times in seconds.values() for t in times)
    after = policy.get_weights()
    assert all(torch.equal(before[k], after[k]) for k in before) and policy.version == 0


def test_cli_checks_the_arm_names():
    parser = build_parser()
    assert parser.parse_args(["bench", "ppo-update", "--arms", "ppo_full"]).arms == ["ppo-full"]
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "ppo-update", "--arms", "ppo-half"])


def test_the_top_arm_is_full_fine_tuning_of_the_top_blocks_only():
    base = method_config(Path(__file__).parents[1] / "configs/glam_gotoredball_small.yaml", [], "glam")
    top, full = arm_config(base, "ppo-top", 3e-5, 4), arm_config(base, "ppo-full", 3e-5, 4)
    assert (top.name, top.backend.lora, top.backend.trainable_layers, top.ppo.lr) == ("ppo-top", None, 4, 3e-5)
    assert (full.backend.lora, full.backend.trainable_layers, full.ppo.lr) == (None, 0, 3e-5)
    assert arm_config(base, "ppo-lora", 3e-5, 4).backend == base.backend
