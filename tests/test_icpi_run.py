"""The ICPI job and `llmrl run` with `method: icpi`: metrics, summary and plots; baselines without an
LLM; a few episodes through the real Ray scorer pool with the real bundled model."""
from __future__ import annotations

import json
from pathlib import Path

import gymnasium
import pytest
import yaml

from cluster.config import ConfigError, from_dict, load_yaml
from cluster.experiment import Experiment
from cluster.methods import load_config
from learners.icpi.run_config import ICPIRunConfig
from cluster.metrics import read_metrics

from icpi_fakes import TinyChain

TINY_ID = "llmrl-test/icpi-tiny-chain-v0"
if TINY_ID not in gymnasium.registry:
    gymnasium.register(TINY_ID, entry_point=TinyChain)


def run_config(tmp_path: Path, **overrides) -> ICPIRunConfig:
    data = {"name": "tiny", "env": {"id": TINY_ID}, "train": {"total_env_steps": 40, "output_dir": str(tmp_path)}}
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return from_dict(ICPIRunConfig, data)


@pytest.mark.parametrize("agent", ["random", "tabular_q", "matching"])
def test_baseline_runs_write_metrics_summary_and_plots(tmp_path, agent):
    run_dir = Experiment(run_config(tmp_path, agent=agent), progress=False).run()
    rows = read_metrics(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert rows[-1]["step"] == summary["env_steps"] >= 40
    episodes = [r for r in rows if r["regret"] is not None]
    assert len(episodes) == summary["episodes"] and all(r["regret"] >= -1e-9 for r in episodes)
    assert all(r["llm_calls"] == 0 for r in rows)
    for name in ("regret.png", "curves.png", "config.yaml", "tensorboard"):
        assert (run_dir / name).exists()


def test_matching_model_learns_the_tiny_chain(tmp_path):
    run_dir = Experiment(run_config(tmp_path, agent="matching", train={"total_env_steps": 120}), progress=False).run()
    assert json.loads((run_dir / "summary.json").read_text())["final_regret"] < 0.2


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"icpi.token_budget: 0 is not allowed; must be >= 1"):
        run_config(tmp_path, icpi={"token_budget": 0})
    with pytest.raises(ConfigError, match=r"^agent: 'ppo' is not allowed; choose one of"):
        run_config(tmp_path, agent="ppo")
    with pytest.raises(ConfigError, match=r"env.id: 'llmrl/nope-v0' is not a registered env"):
        run_config(tmp_path, env={"id": "llmrl/nope-v0"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: dqn\n")
    with pytest.raises(ConfigError, match="method: 'dqn' is not a registered method; choose one of glam, icpi"):
        load_config(bad)
    bad.write_text("name: x\n")
    with pytest.raises(ConfigError, match="no `method:` key; add one of: method: glam, method: icpi"):
        load_config(bad)


def test_run_command_dispatches_on_method(tmp_path, capsys):
    from cluster.cli import main

    assert load_config("configs/glam_babyai.yaml").method == "glam"
    path = tmp_path / "icpi_tiny.yaml"
    path.write_text(yaml.safe_dump({"method": "icpi", "name": "cli", "agent": "random", "env": {"id": TINY_ID},
                                    "train": {"total_env_steps": 10, "output_dir": str(tmp_path)}}))
    assert main(["run", str(path), "--no-progress"]) == 0
    assert "regret.png" in capsys.readouterr().out
    assert (tmp_path / "cli" / "metrics.csv").is_file()


def test_shipped_configs_load():
    import envs  # noqa: F401

    for path in sorted(Path("configs").glob("icpi_*.yaml")):
        config = load_yaml(ICPIRunConfig, path)
        assert config.env.id in gymnasium.registry and path.stem == config.name


def test_icpi_through_the_real_ray_pool(tmp_path, ray_cluster):
    """ICPI with the bundled model behind one Ray scorer worker; small prompts and horizon to stay fast."""
    config = run_config(tmp_path, icpi={"token_budget": 160, "score_answer_sets": True, "horizon": 1,
                                        "min_successes": 0, "temperature": 0.0},
                        train={"total_env_steps": 7, "seed": 1})
    run_dir = Experiment(config, progress=False).run()
    rows = read_metrics(run_dir)
    model_steps = [r for r in rows if r["used_model"]]
    assert model_steps, "the agent never asked the model: pick a seed that gets ready sooner"
    assert all(r["round_trips"] == 2 and r["llm_calls"] == 6 for r in model_steps)  # done, reward; 3 actions each
    assert all(0 < r["prompt_tokens"] <= r["llm_calls"] * 160 for r in model_steps)


@pytest.mark.slow
def test_icpi_on_the_real_chain_with_sampled_predictions(tmp_path, ray_cluster):
    """The real chain env, every prediction sampled and parsed, through two Ray scorer workers."""
    config = run_config(tmp_path, env={"id": "llmrl/icpi-chain-v0"}, pool={"num_workers": 2},
                        icpi={"token_budget": 200, "horizon": 2, "min_successes": 0},
                        train={"total_env_steps": 15, "seed": 3})
    run_dir = Experiment(config, progress=False).run()
    rows = read_metrics(run_dir)
    model_steps = [r for r in rows if r["used_model"]]
    assert model_steps
    assert all(r["sampled_outputs"] >= 3 and r["invalid_rate"] is not None for r in model_steps)
    assert sum(r["round_trips"] for r in model_steps) < sum(r["llm_calls"] for r in model_steps)
