"""`llmrl run` end to end through real Ray actors with a tiny budget, then --resume."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from cluster.config import ConfigError, from_dict
from learners.ppo.run_config import RunConfig

TINY = {
    "method": "glam",
    "name": "tiny",
    "backend": {"lora": {"r": 4}},
    "value_head": {"hidden_sizes": [16]},
    "pool": {"num_workers": 1, "cpus_per_worker": 0.5},
    "learner": {"cpus": 0.5},
    "runner": {"env_id": "llmrl/TextChoice-v0", "num_envs": 2},
    "ppo": {"lr": 1.0e-3, "epochs": 1, "minibatch_size": 8},
    "train": {"total_env_steps": 4, "steps_per_update": 2},
}


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="runner.env_id: 'llmrl/Nope-v0' is not a registered env"):
        from_dict(RunConfig, {"runner": {"env_id": "llmrl/Nope-v0"}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'lr'; allowed keys: backend"):
        from_dict(RunConfig, {"lr": 1})
    with pytest.raises(ConfigError, match="ppo.epochs: expected an integer"):
        from_dict(RunConfig, {"ppo": {"epochs": "four"}})
    with pytest.raises(ConfigError, match="train.success_window: 0 is not allowed; must be >= 1"):
        from_dict(RunConfig, {"train": {"success_window": 0}})


def _learner_state(checkpoint):
    from learners.state_io import load_state

    return load_state(checkpoint, "glam")["counters"], load_state(checkpoint / "learner", "policy")["version"]


@pytest.mark.usefixtures("ray_cluster")
def test_run_writes_metrics_plot_checkpoint_and_resumes(tmp_path):
    from cluster.checkpoint import latest_checkpoint
    from cluster.experiment import Experiment
    from cluster.metrics import read_metrics

    config = from_dict(RunConfig, {**TINY, "train": {**TINY["train"], "output_dir": str(tmp_path)}})
    run_dir = Experiment(config, progress=False).run()
    rows = read_metrics(run_dir)
    assert [r["updates"] for r in rows] == [1.0]
    assert (run_dir / "curves.png").stat().st_size > 0 and list((run_dir / "tensorboard").iterdir())
    assert _learner_state(latest_checkpoint(run_dir)) == ({"updates": 1, "env_steps": 4, "episodes": 4}, 1)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 4 and summary["success_rate_first"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert summary["random_episodes"] == 100 and 0.1 < summary["random_success_rate"] < 0.4  # 1 rewarded of 4
    # Resume for two more rounds with the next rollouts launched before each update.
    longer = dataclasses.replace(config, train=dataclasses.replace(config.train, total_env_steps=12,
                                                                   overlap_rollouts=True))
    Experiment(longer, run_dir=run_dir, progress=False).run()
    assert _learner_state(latest_checkpoint(run_dir)) == ({"updates": 3, "env_steps": 12, "episodes": 12}, 3)
    rows = read_metrics(run_dir)
    assert [r["updates"] for r in rows] == [1.0, 2.0, 3.0] and rows[-1]["stale_steps"] == 0.0  # lag 1 is allowed
    assert rows[1]["policy_lag"] == 0.0 and rows[2]["policy_lag"] > 0.0  # round 3 acted while update 2 ran
    # A run that died after update 3 was logged but before it was checkpointed resumes from update 2:
    # update 3 is redone and logged once.
    shutil.rmtree(latest_checkpoint(run_dir))
    Experiment(dataclasses.replace(longer, train=dataclasses.replace(longer.train, total_env_steps=16)),
               run_dir=run_dir, progress=False).run()
    assert [r["updates"] for r in read_metrics(run_dir)] == [1.0, 2.0, 3.0, 4.0]
    _check_eval_of(latest_checkpoint(run_dir))


def test_the_learning_line_puts_start_end_and_random_side_by_side():
    from cluster.cli import learning_line

    summary = {"success_rate_first": 0.3, "success_rate": 0.8, "success_window": 20, "episodes": 61,
               "env_steps": 640, "random_success_rate": 0.33, "random_episodes": 100}
    assert learning_line(summary, "runs/x/curves.png") == (
        "success rate: 0.30 over the first 20 episodes, 0.80 over the last 20 (61 episodes, 640 env steps); "
        "a random policy: 0.33 over 100 episodes. Learning curve: runs/x/curves.png")
    no_random = {k: v for k, v in summary.items() if not k.startswith("random")}
    assert learning_line({**no_random, "success_rate": None}, "c.png").startswith(
        "success rate: 0.30 over the first 20 episodes, - over the last 20 (61 episodes, 640 env steps). Learning")


def _check_eval_of(checkpoint):
    """`llmrl eval CHECKPOINT` loads the trained weights and reports success and return."""
    import contextlib
    import io

    from cluster.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["eval", str(checkpoint), "--env", "llmrl/TextChoice-v0", "--episodes", "3", "--greedy"]) == 0
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert result["policy"] == str(checkpoint) and result["episodes"] == 3
    assert result["success_rate"] in (0.0, 1.0)  # greedy on a one-state task: always the same choice
    assert result["mean_return"] == result["success_rate"] and result["mean_length"] == 1.0


def test_eval_random_baseline_through_the_cli(capsys):
    from cluster.cli import main

    assert main(["eval", "--policy", "random", "--env", "llmrl/TextChoice-v0", "--episodes", "400"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["policy"] == "random" and abs(result["success_rate"] - 0.25) < 0.07  # 1 of 4 fruits


def test_eval_without_checkpoint_names_the_fix(capsys):
    from cluster.cli import main

    assert main(["eval", "--env", "llmrl/TextChoice-v0"]) == 2
    assert "llmrl eval: error: give a CHECKPOINT" in capsys.readouterr().err
    assert main(["eval", "--policy", "random"]) == 2
    assert "give --env ENV_ID (one env) or --suite NAME" in capsys.readouterr().err
