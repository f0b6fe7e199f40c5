"""RLlib baselines (`method: rllib`): symbolic views of our envs, config errors, and real RLlib runs of every
shipped config through `llmrl run` on the real local Ray, with a resume from our (pickle-free) checkpoint."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from cluster.cli import main
from cluster.config import ConfigError
from cluster.methods import load_config
from envs.icpi.registry import ICPI_ENV_IDS
from learners.rllib.algorithm import RLlibAlgorithm
from learners.rllib.symbolic import MISSION_WORDS, make_symbolic_env

REPO = Path(__file__).resolve().parents[1]


def _episode(env, actions, seed=0):
    obs, _ = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs)
        if terminated or truncated:
            return reward, info
    raise AssertionError("the episode did not end")


def test_frozenlake_one_hot_and_success():
    env = make_symbolic_env("llmrl/FrozenLake4x4-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (16,) and obs[0] == 1.0 and obs.sum() == 1.0
    reward, info = _episode(env, [2, 2, 1, 1, 1, 2])  # right, right, down, down, down, right: the goal
    assert reward == 1.0 and info["success"] is True
    _, info = _episode(env, [1, 2])  # down, right: the hole at row 2, column 2
    assert info["success"] is False


def test_babyai_image_and_flat_views():
    image = make_symbolic_env("llmrl/BabyAI-GoToRedBall-v0", {"room_size": 5, "num_dists": 0})
    obs, _ = image.reset(seed=3)
    assert obs.shape == (7, 7, 3) and obs.dtype == np.float32
    flat = make_symbolic_env("llmrl/BabyAI-GoToRedBall-v0", {"room_size": 5, "num_dists": 0}, "flat")
    vector, _ = flat.reset(seed=3)
    assert np.array_equal(vector[:147], obs.ravel()) and vector[147:151].sum() == 1.0
    words = {w for w, on in zip(MISSION_WORDS, vector[151:]) if on}
    assert words == {"go", "to", "the", "red", "ball"}
    _, info = _episode(image, [0] * 25)  # turning in place never reaches the ball: a timeout
    assert info["success"] is False


@pytest.mark.parametrize("env_id", ICPI_ENV_IDS)
def test_icpi_state_views(env_id):
    env = make_symbolic_env(env_id)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape and obs.size > 0
    for _ in range(50):
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs.shape == env.observation_space.shape
        if terminated or truncated:
            assert isinstance(info["success"], bool)
            break


def test_text_only_envs_and_bad_views_are_refused():
    with pytest.raises(ValueError, match="no symbolic observation for RLlib"):
        make_symbolic_env("llmrl/TextChoice-v0")
    with pytest.raises(ValueError, match="for BabyAI envs only"):
        make_symbolic_env("llmrl/FrozenLake4x4-v0", observation="image")


def test_config_errors_name_the_fix():
    path = REPO / "configs" / "rllib_ppo_babyai.yaml"
    with pytest.raises(ConfigError, match="rllib.trainig: not an RLlib AlgorithmConfig section; use one of training"):
        load_config(path, ["rllib.trainig.lr=0.1"])
    with pytest.raises(ConfigError, match="RLlib runs on Ray: set use_ray: true"):
        load_config(path, ["use_ray=false"])
    with pytest.raises(ConfigError, match="env.id: 'llmrl/Nope' is not a registered env"):
        load_config(path, ["env.id=llmrl/Nope"])
    config = load_config(path, ["rllib.env_runners.num_env_runners=2", "rllib.learners.num_learners=1",
                                "rllib.learners.num_gpus_per_learner=1"])
    assert RLlibAlgorithm.resource_roles(config) == [
        ("rllib_env_runner[0]", {"CPU": 1.0}), ("rllib_env_runner[1]", {"CPU": 1.0}),
        ("rllib_learner[0]", {"CPU": 1.0, "GPU": 1.0})]


def test_unknown_rllib_keyword_is_a_config_error(ray_cluster):
    config = load_config(REPO / "configs" / "rllib_dqn_icpi_chain.yaml", ["rllib.training.learning_rat=0.1"])
    with pytest.raises(ConfigError, match="rllib.training: .*learning_rat"):
        RLlibAlgorithm(config)


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name,steps", [("rllib_ppo_babyai.yaml", 256), ("rllib_dqn_frozenlake.yaml", 400),
                                        ("rllib_dqn_icpi_chain.yaml", 400)])
def test_shipped_configs_run_and_resume(ray_cluster, tmp_path, name, steps):
    out = tmp_path / "runs"
    args = ["run", str(REPO / "configs" / name), "--no-progress", "--set", f"train.total_env_steps={steps}",
            "--set", f"train.output_dir={out}"]
    assert main(args) == 0
    run_dir, = out.iterdir()
    rows = _rows(run_dir)
    assert int(float(rows[-1]["env_steps"])) >= steps and float(rows[-1]["episodes"]) > 0
    assert {"success_rate", "mean_return"} <= set(rows[0])
    assert {"loss_policy", "loss_value", "entropy"} <= set(rows[0]) if "ppo" in name else "loss_td" in rows[0]
    checkpoint = sorted((run_dir / "checkpoints").iterdir())[-1]
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "config.yaml", "driver.json", "driver.safetensors", "rllib.json", "rllib.safetensors"]  # no pickle
    assert main(["run", "--resume", str(run_dir), "--no-progress", "--set",
                 f"train.total_env_steps={2 * steps}"]) == 0
    resumed = _rows(run_dir)
    assert resumed[:len(rows)] == rows and len(resumed) > len(rows)
    assert float(resumed[len(rows)]["env_steps"]) > float(rows[-1]["env_steps"])  # counters went on
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["method"] == "rllib" and summary["env_steps"] >= 2 * steps


def test_restore_puts_back_the_weights(ray_cluster, tmp_path):
    config = load_config(REPO / "configs" / "rllib_dqn_icpi_chain.yaml", ["train.total_env_steps=200"])
    first = RLlibAlgorithm(config)
    try:
        first.step()
        first.save(tmp_path)
        saved = first.algo.get_module().state_dict()
    finally:
        first.stop()
    second = RLlibAlgorithm(config)
    try:
        fresh = second.algo.get_module().state_dict()
        assert any(not np.array_equal(np.asarray(fresh[k]), np.asarray(saved[k])) for k in saved)
        second.restore(tmp_path)
        restored = second.algo.get_module().state_dict()
        assert all(np.array_equal(np.asarray(restored[k]), np.asarray(saved[k])) for k in saved)
        assert (second.iteration, second.env_steps) == (first.iteration, first.env_steps)
    finally:
        second.stop()
