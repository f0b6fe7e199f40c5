"""The learning-curve benchmark's pure parts: arm configs, throughput split, curves."""
from __future__ import annotations

import pytest

from benchmarks.common import ppo_config
from benchmarks.glam import bench_runner, config_changes, curve, finished, throughput
from cluster.config import load_yaml
from learners.ppo.run_config import RunConfig

ROWS = [
    {"env_steps": 32.0, "round_env_steps": 32.0, "steps_per_s": 4.0, "success_rate": 0.0, "time_scoring_s": 4.0,
     "time_env_step_s": 1.0, "time_update_s": 2.0, "time_weight_sync_s": 0.5},
    {"env_steps": 64.0, "round_env_steps": 32.0, "steps_per_s": 2.0, "success_rate": 0.5, "time_scoring_s": 10.0,
     "time_env_step_s": 1.0, "time_update_s": 4.0, "time_weight_sync_s": 0.5},
]


def test_throughput_and_shares_from_metrics_rows():
    figures = throughput(ROWS)
    assert figures["wall_s"] == pytest.approx(8.0 + 16.0)
    assert figures["env_steps_per_s"] == pytest.approx(64 / 24)
    assert figures["share_scoring"] == pytest.approx(14 / 24) and figures["share_weight_sync"] == pytest.approx(1 / 24)
    assert curve(ROWS) == [(32, 0.0), (64, 0.5)]


def test_ppo_arms_differ_only_in_fine_tuning_and_budget():
    base = load_yaml(RunConfig, "configs/glam_babyai.yaml")
    runner = bench_runner(base, "llmrl/BabyAI-GoToLocal-v0", None)
    lora = ppo_config(base, "ppo-lora", runner, 512, "out", full_lr=1e-5)
    full = ppo_config(base, "ppo-full", runner, 512, "out", full_lr=1e-5)
    assert lora.backend.lora == base.backend.lora and full.backend.lora is None
    assert full.ppo.lr == 1e-5 and lora.ppo.lr == base.ppo.lr
    assert lora.train.total_env_steps == full.train.total_env_steps == 512
    assert lora.runner.env_id == full.runner.env_id == "llmrl/BabyAI-GoToLocal-v0" and lora.name == "ppo-lora"
    assert lora.runner.env_kwargs == base.runner.env_kwargs


def test_env_kwargs_override_the_config_for_other_envs():
    base = load_yaml(RunConfig, "configs/glam_babyai.yaml")
    runner = bench_runner(base, "llmrl/TextChoice-v0", {})
    assert runner.env_id == "llmrl/TextChoice-v0" and runner.env_kwargs == {}
    assert runner.num_envs == base.runner.num_envs and base.runner.env_kwargs == {"reward_scale": 20.0}


def test_the_textchoice_learning_config_loads():
    config = load_yaml(RunConfig, "configs/glam_textchoice.yaml")
    assert config.runner.env_id == "llmrl/TextChoice-v0" and config.ppo.epochs == 2 and config.backend.lora


def test_an_arm_is_finished_when_its_curve_reaches_the_budget():
    assert finished({"success_rate": 0.3}, 512)
    assert finished({"curve": [[256, 0.1], [512, 0.2]]}, 512) and not finished({"curve": [[256, 0.1]]}, 512)
    assert not finished({"curve": []}, 512)


def test_resuming_refuses_an_arm_started_with_other_settings():
    base = load_yaml(RunConfig, "configs/glam_babyai.yaml")
    runner = bench_runner(base, "llmrl/BabyAI-GoToRedBall-v0", None)
    stored = ppo_config(base, "ppo-lora", runner, 512, "out", full_lr=1e-5)
    assert config_changes(stored, ppo_config(base, "ppo-lora", runner, 4096, "out", full_lr=1e-5)) == []
    other_env = bench_runner(base, "llmrl/BabyAI-GoToRedBall-v0", {"room_size": 5})
    assert config_changes(stored, ppo_config(base, "ppo-lora", other_env, 512, "out", full_lr=1e-5)) == ["runner"]


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_bench_resumes_an_interrupted_arm_and_keeps_finished_ones(tmp_path, capsys):
    import json

    from cluster.cli import main

    args = ["bench", "glam", "--config", "configs/glam_textchoice.yaml", "--env", "llmrl/TextChoice-v0",
            "--arms", "ppo-lora,random", "--eval-episodes", "8", "--checkpoint-every", "1",
            "--output-dir", str(tmp_path)]
    assert main([*args, "--env-steps", "32"]) == 0
    first = json.loads((tmp_path / "results.json").read_text())
    assert main([*args, "--env-steps", "64", "--resume"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    out = capsys.readouterr().out
    assert "ppo-lora: resuming" in out and "random: kept" in out and results["random"] == first["random"]
    assert [x for x, _ in results["ppo-lora"]["curve"]] == [32, 64] and not (tmp_path / "ppo-lora-2").exists()


def test_the_small_gotoredball_curve_config_loads():
    config = load_yaml(RunConfig, "configs/glam_gotoredball_small.yaml")
    assert config.runner.env_kwargs == {"room_size": 5, "num_dists": 0, "reward_scale": 20.0}
    assert config.train.success_window == 20 and config.backend.lora


def test_resuming_an_arm_that_never_checkpointed_says_what_to_do(tmp_path):
    from benchmarks.glam import run_ppo_arm

    base = load_yaml(RunConfig, "configs/glam_gotoredball_small.yaml")
    config = ppo_config(base, "ppo-lora", base.runner, 64, str(tmp_path), full_lr=1e-5)
    (tmp_path / "ppo-lora").mkdir()
    with pytest.raises(SystemExit, match="ppo-lora has no checkpoint .*delete it to start ppo-lora again"):
        run_ppo_arm(config, resume=True)
