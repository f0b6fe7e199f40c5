"""The algorithm contract and the experiment skeleton: every method runs, resumes and reports the same
way; config and usage errors are one clear line before anything starts; GLAM's learner is a Ray actor."""
from __future__ import annotations

import gc
import json
import subprocess
import sys
import warnings

import gymnasium
import pytest
import yaml

from cluster.cli import main
from cluster.config import ConfigError
from cluster.experiment import Experiment
from cluster.methods import METHODS, algorithm_class, config_from_dict, load_config
from cluster.metrics import read_metrics

from icpi_fakes import TinyChain

TINY_CHAIN = "llmrl-test/icpi-tiny-chain-v0"
if TINY_CHAIN not in gymnasium.registry:
    gymnasium.register(TINY_CHAIN, entry_point=TinyChain)

TINY_GLAM = {
    "method": "glam", "name": "tiny", "backend": {"lora": {"r": 4}}, "value_head": {"hidden_sizes": [16]},
    "pool": {"num_workers": 1, "cpus_per_worker": 0.5}, "learner": {"cpus": 0.5},
    "runner": {"env_id": "llmrl/TextChoice-v0", "num_envs": 2},
    "ppo": {"lr": 1.0e-3, "epochs": 1, "minibatch_size": 8},
    "train": {"total_env_steps": 4, "steps_per_update": 2},
}


def icpi_config(tmp_path, steps: int, **train):
    return config_from_dict({"method": "icpi", "name": "resume", "agent": "tabular_q", "env": {"id": TINY_CHAIN},
                             "train": {"total_env_steps": steps, "output_dir": str(tmp_path), "seed": 4, **train}})


def test_every_shipped_config_names_a_registered_method():
    from pathlib import Path

    for path in sorted(Path("configs").glob("*.yaml")):
        config = load_config(path)
        assert config.method in METHODS and isinstance(config, algorithm_class(config.method).config_class)


def test_dotted_overrides_reach_the_config_and_bad_ones_name_the_key():
    config = load_config("configs/glam_babyai.yaml", ["ppo.lr=1e-5", "train.seed=3", "backend.lora=null"])
    assert (config.ppo.lr, config.train.seed, config.backend.lora) == (1e-5, 3, None)
    with pytest.raises(ConfigError, match=r"ppo: unknown key\(s\) 'lrr'; allowed keys: adam_eps"):
        load_config("configs/glam_babyai.yaml", ["ppo.lrr=1"])
    with pytest.raises(ConfigError, match="method: 'dqn' is not a registered method"):
        load_config("configs/glam_babyai.yaml", ["method=dqn"])


def test_icpi_resumed_between_episodes_equals_an_uninterrupted_run(tmp_path):
    whole = Experiment(icpi_config(tmp_path / "a", 60), progress=False).run()
    part = Experiment(icpi_config(tmp_path / "b", 25), progress=False).run()
    assert len(read_metrics(part)) < 60
    Experiment(icpi_config(tmp_path / "b", 60), run_dir=part, progress=False).run()

    def figures(run_dir):
        return [{k: v for k, v in row.items() if k != "act_time_s"} for row in read_metrics(run_dir)]

    assert figures(part) == figures(whole)
    summary = {k: v for k, v in json.loads((part / "summary.json").read_text()).items() if k != "wall_s"}
    assert summary == {k: v for k, v in json.loads((whole / "summary.json").read_text()).items() if k != "wall_s"}


def test_run_and_resume_through_the_cli_with_overrides(tmp_path, capsys):
    path = tmp_path / "icpi.yaml"
    path.write_text(yaml.safe_dump({"method": "icpi", "name": "cli", "agent": "random", "env": {"id": TINY_CHAIN},
                                    "train": {"total_env_steps": 10, "output_dir": str(tmp_path)}}))
    assert main(["run", str(path), "--no-progress", "--set", "train.seed=2"]) == 0
    run_dir = tmp_path / "cli"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["seed"] == 2
    steps = len(read_metrics(run_dir))
    assert main(["run", "--resume", str(run_dir), "--no-progress", "--set", "train.total_env_steps=30"]) == 0
    assert len(read_metrics(run_dir)) > steps and "regret.png" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["run", "nope.yaml"], "config file nope.yaml does not exist"),
    (["run", "configs/glam_babyai.yaml", "--set", "ppo.lr=-1"], "ppo.lr: -1.0 is not allowed; must be > 0"),
    (["run", "configs/glam_babyai.yaml", "--set", "backend.lora.r=0"], "backend.lora.r: 0 is not allowed"),
    (["run", "configs/glam_babyai.yaml", "--set", "ppo.gamma=2.0"], "ppo.gamma: 2.0 is not allowed"),
    (["run", "configs/glam_babyai.yaml", "--set", "ppo"], "write KEY=VALUE"),
    (["run", "--resume", "runs/none-such"], "has no config.yaml"),
])
def test_config_and_usage_errors_are_one_line_before_anything_starts(tmp_path, capsys, argv, message):
    argv = argv + (["--set", f"train.output_dir={tmp_path}"] if "--resume" not in argv else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("llmrl run: error:")
    assert not list(tmp_path.iterdir())  # no run directory left behind


def test_a_config_error_in_a_fresh_process_has_no_traceback_and_starts_no_ray(tmp_path):
    code = ("import sys, ray; from cluster.cli import main; rc = main(sys.argv[1:]); "
            "sys.exit(rc if not ray.is_initialized() else 99)")
    done = subprocess.run([sys.executable, "-c", code, "run", "configs/glam_babyai.yaml", "--set", "ppo.lr=-1",
                           "--set", f"train.output_dir={tmp_path}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "ppo.lr: -1.0 is not allowed" in done.stderr
    assert not list(tmp_path.iterdir())


def test_glam_runs_in_process_without_ray_and_resumes(tmp_path):
    import ray

    was_running = ray.is_initialized()
    config = config_from_dict({**TINY_GLAM, "use_ray": False, "train": {**TINY_GLAM["train"],
                                                                        "output_dir": str(tmp_path)}})
    run_dir = Experiment(config, progress=False).run()
    assert [r["updates"] for r in read_metrics(run_dir)] == [1.0]
    longer = config_from_dict({**TINY_GLAM, "use_ray": False,
                               "train": {**TINY_GLAM["train"], "output_dir": str(tmp_path), "total_env_steps": 8}})
    Experiment(longer, run_dir=run_dir, progress=False).run()
    rows = read_metrics(run_dir)
    assert [r["updates"] for r in rows] == [1.0, 2.0] and rows[-1]["policy_version"] == 2.0
    assert ray.is_initialized() == was_running  # no Ray started


@pytest.mark.usefixtures("ray_cluster")
def test_glam_learner_is_a_ray_actor_in_its_own_bundle_and_the_driver_holds_no_model(tmp_path):
    import torch
    from ray.util import placement_group_table

    from cluster.runtime import RayRuntime
    from learners.ppo.algorithm import GlamAlgorithm

    def modules_here() -> int:
        gc.collect()
        with warnings.catch_warnings():  # isinstance on some deprecated torch objects warns
            warnings.simplefilter("ignore")
            return sum(isinstance(o, torch.nn.Module) for o in gc.get_objects())

    modules_before = modules_here()
    algorithm = GlamAlgorithm(config_from_dict(TINY_GLAM), RayRuntime())
    try:
        row = algorithm.step()
        assert row["updates"] == 1.0 and row["policy_version"] == 1.0
        assert modules_here() == modules_before
        group = placement_group_table(algorithm.learner.group)
        assert group["state"] == "CREATED" and list(group["bundles"].values()) == [{"CPU": 0.5}]
    finally:
        algorithm.stop()
    assert placement_group_table(algorithm.learner.group)["state"] == "REMOVED"
