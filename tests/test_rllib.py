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
from learners.rllib.symbolic import MISSION_TOKENS, MISSION_WORDS, UNKNOWN_WORD, make_symbolic_env, mission_word_ids

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


def test_mission_word_ids_keep_the_order():
    ids = mission_word_ids("pick up the red ball, then go to the blargh")
    words = ["pick", "up", "the", "red", "ball", "then", "go", "to", "the"]
    assert list(ids[:10]) == [MISSION_WORDS.index(w) + 1 for w in words] + [UNKNOWN_WORD]
    assert ids.shape == (MISSION_TOKENS,) and not ids[10:].any()
    with pytest.raises(ValueError, match="has 25 words; the image_mission view holds 24"):
        mission_word_ids(" ".join(["go"] * 25))


def test_babyai_image_mission_view():
    env = make_symbolic_env("llmrl/BabyAI-PickupThenGoToLocal-v0", observation="image_mission")
    obs, _ = env.reset(seed=5)
    image = make_symbolic_env("llmrl/BabyAI-PickupThenGoToLocal-v0")
    assert env.observation_space.contains(obs) and obs.shape == (147 + 4 + MISSION_TOKENS,)
    assert np.array_equal(obs[:147], image.reset(seed=5)[0].ravel()) and obs[147:151].sum() == 1.0
    assert np.array_equal(obs[151:], mission_word_ids(env.unwrapped.mission))


def _module():
    import gymnasium

    from learners.rllib.mission_module import MissionConvModule

    space = gymnasium.spaces.Box(0.0, 255.0, (147 + 4 + MISSION_TOKENS,), np.float32)
    return MissionConvModule(observation_space=space, action_space=gymnasium.spaces.Discrete(6),
                             model_config={"hidden": 32, "vf_share_layers": False})  # RLlib's own keys pass


def test_mission_module_reads_word_order():
    """The GRU sees the words in order: a mission and its reverse (same bag of words) get different logits;
    padding after the last word changes nothing."""
    import torch
    from ray.rllib.core.columns import Columns

    from learners.rllib.mission_module import last_valid, split_observation

    torch.manual_seed(0)
    module = _module()
    view = np.random.default_rng(0).integers(0, 6, 147).astype(np.float32)
    direction = np.eye(4, dtype=np.float32)[1]
    missions = ["pick up the red ball then go to the blue key", "pick up the blue key then go to the red ball"]
    obs = torch.tensor(np.stack([np.concatenate([view, direction, mission_word_ids(m)]) for m in missions]))
    image, heading, ids = split_observation(obs)
    assert image.shape == (2, 3, 7, 7) and torch.equal(image[0].permute(1, 2, 0).reshape(-1), obs[0, :147])
    assert torch.equal(heading[0], torch.tensor(direction)) and ids.dtype == torch.long
    outputs = torch.arange(2 * MISSION_TOKENS).reshape(2, MISSION_TOKENS, 1)
    assert last_valid(outputs, ids)[:, 0].tolist() == [10, MISSION_TOKENS + 10]  # 11 words each
    with torch.no_grad():
        logits = module.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        values = module.compute_values({Columns.OBS: obs})
    assert logits.shape == (2, 6) and values.shape == (2,)
    assert not torch.allclose(logits[0], logits[1])


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
    with pytest.raises(ConfigError, match="env.observation.*no Q head: use algorithm PPO"):
        load_config(REPO / "configs" / "rllib_dqn_frozenlake.yaml",
                    ["env.id=llmrl/BabyAI-GoToLocal-v0", "env.observation=image_mission"])
    with pytest.raises(ConfigError, match="rllib.rl_module.model_config: hiden not a key of the image_mission"):
        load_config(REPO / "configs" / "rllib_ppo_babyai_mixed.yaml", ["rllib.rl_module.model_config.hiden=64"])
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


SMALL_BATCH = ("rllib.training.train_batch_size_per_learner=128", "rllib.training.minibatch_size=64")


@pytest.mark.parametrize("name,steps,sets", [("rllib_ppo_babyai.yaml", 256, ()),
                                             ("rllib_ppo_babyai_mixed.yaml", 256, SMALL_BATCH),
                                             ("rllib_dqn_frozenlake.yaml", 400, ()),
                                             ("rllib_dqn_icpi_chain.yaml", 400, ())])
def test_shipped_configs_run_and_resume(ray_cluster, tmp_path, name, steps, sets):
    out = tmp_path / "runs"
    args = ["run", str(REPO / "configs" / name), "--no-progress", "--set", f"train.total_env_steps={steps}",
            "--set", f"train.output_dir={out}", *[a for s in sets for a in ("--set", s)]]
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
                 f"train.total_env_steps={2 * steps}"]) == 0  # the run dir's config keeps `sets`
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
