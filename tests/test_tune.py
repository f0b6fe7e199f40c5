"""`llmrl tune`: sweep files validated before Ray starts, the per-trial resource plan and actors placed in the
trial's group, and real Ray Tune sweeps on a local Ray: ASHA stopping trials early and PBT exploiting checkpoints
(ICPI baselines on chain, no LLM), and a GLAM grid with the real bundled model (30 s on an idle 2-core machine)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from cluster.config import ConfigError
from cluster.methods import load_config
from cluster.sweep_config import load_sweep
from cluster.tune import placement, resource_bundles

ROOT = Path(__file__).resolve().parent.parent
GLAM_BASE = str(ROOT / "configs" / "glam_textchoice.yaml")
ICPI_BASE = str(ROOT / "configs" / "icpi_chain.yaml")


def write_sweep(tmp_path: Path, name: str = "sweep", **data) -> Path:
    data.setdefault("output_dir", str(tmp_path / "out"))
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_results(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


# ---- the resource plan -------------------------------------------------------------------------
def test_resource_bundles_of_a_glam_run():
    config = load_config(GLAM_BASE, ["pool.num_workers=2", "pool.cpus_per_worker=0.5", "num_runners=2",
                                     "learner.gpus=1", "runner_cpus=0.25"])
    assert resource_bundles(config) == [
        ("trainable", {"CPU": 0.25}), ("learner", {"CPU": 0.5, "GPU": 1.0}),
        ("scorer_worker[0]", {"CPU": 0.5}), ("scorer_worker[1]", {"CPU": 0.5}),
        ("env_runner[0]", {"CPU": 0.25}), ("env_runner[1]", {"CPU": 0.25})]
    assert resource_bundles(load_config(GLAM_BASE, ["runner_cpus=0"]), trainable_cpus=0.5) == [
        ("trainable", {"CPU": 0.5}), ("learner", {"CPU": 0.5}), ("scorer_worker[0]", {"CPU": 1.0})]
    # without Ray the whole run is the trial's own process
    assert resource_bundles(load_config(GLAM_BASE, ["use_ray=false"])) == [("trainable", {"CPU": 0.75})]


def test_resource_bundles_of_icpi_runs():
    assert resource_bundles(load_config(ICPI_BASE, ["pool.num_workers=3", "pool.gpus_per_worker=0.5"])) == [
        ("trainable", {"CPU": 0.25}), *[(f"scorer_worker[{i}]", {"CPU": 1.0, "GPU": 0.5}) for i in range(3)]]
    for agent in ("random", "tabular_q", "matching"):  # baselines ask no LLM: nothing but the trial itself
        assert resource_bundles(load_config(ICPI_BASE, [f"agent={agent}"])) == [("trainable", {"CPU": 0.25})]
    assert resource_bundles(load_config(ICPI_BASE, ["use_ray=false"])) == [("trainable", {"CPU": 1.25})]


def test_a_trial_places_its_sampled_config(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, base=GLAM_BASE, metric="success_rate", mode="max",
                                   search_space={"pool.num_workers": {"grid_search": [1, 2]}}))
    factory = placement(sweep, {"pool.num_workers": 2})
    assert factory.bundles == [{"CPU": 0.25}, {"CPU": 0.5}, {"CPU": 1.0}, {"CPU": 1.0}, {"CPU": 0.25}]
    assert factory.strategy == "PACK"


def test_a_glam_checkpoint_continues_with_the_trials_own_lr(tmp_path):
    """PPOLearner.restore loads the optimizer state; the config's ppo.lr (a PBT mutation, or resume --set) wins."""
    import dataclasses

    from learners.ppo.learner import PPOLearner

    config = load_config(GLAM_BASE, ["backend.lora.r=4", "value_head.hidden_sizes=[16]"])
    learner = PPOLearner.build(config.backend, config.value_head, config.ppo)
    learner.save(tmp_path)
    mutated = PPOLearner(learner.policy, dataclasses.replace(config.ppo, lr=0.02))
    mutated.restore(tmp_path)
    assert [g["lr"] for g in mutated.optimizer.param_groups] == [0.02]
    assert [g["lr"] for g in learner.optimizer.param_groups] == [config.ppo.lr]


# ---- sweep files -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "tune").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweeps_load(path):
    from cluster.tune import _domain, _scheduler

    sweep = load_sweep(path)
    assert sweep.method in ("glam", "icpi", "rllib") and sweep.name == path.stem
    assert all(_domain(spec) is not None for spec in sweep.config.search_space.values())
    _scheduler(sweep)


def test_sweep_errors_name_the_key(tmp_path):
    def error(**data) -> str:
        data = {"base": GLAM_BASE, "metric": "success_rate", "mode": "max",
                "search_space": {"ppo.lr": {"grid_search": [1e-3]}}, **data}
        with pytest.raises(ConfigError) as e:
            load_sweep(write_sweep(tmp_path, **data))
        return str(e.value)

    message = error(search_space={"ppo.lrr": {"choice": [1e-3]}})
    assert "search_space.ppo.lrr=0.001" in message and "unknown key(s) 'lrr'; allowed keys: " in message
    assert "entropy_coef" in message and "lr," in message
    assert "unknown key(s) 'pool_size'; allowed keys:" in error(search_space={"pool_size": {"grid_search": [1]}})
    assert "search_space.ppo.lr=-1.0" in error(search_space={"ppo.lr": {"grid_search": [-1.0]}})
    assert "scheduler.type: 'hyperband' is not allowed; choose one of 'fifo', 'asha', 'pbt'" in \
        error(scheduler={"type": "hyperband"})
    assert "search_space.ppo.lr.uniform: [0.1, 0.01] is not allowed; must be [lo, hi] with lo <= hi" in \
        error(search_space={"ppo.lr": {"uniform": [0.1, 0.01]}})
    assert "loguniform bounds must be > 0" in error(search_space={"ppo.lr": {"loguniform": [0, 0.01]}})
    assert "search_space.ppo.lr: {'range': [1, 2]} is not allowed; write one of {grid_search: [...]}" in \
        error(search_space={"ppo.lr": {"range": [1, 2]}})
    assert "scheduler.max_t: None is not allowed; asha needs max_t" in error(scheduler={"type": "asha"})
    assert "scheduler.max_t: 4 is not allowed; only for scheduler type asha" in \
        error(scheduler={"type": "fifo", "max_t": 4})
    assert "scheduler.hyperparam_mutations.ppo.lr.uniform" in \
        error(scheduler={"type": "pbt", "perturbation_interval": 2,
                         "hyperparam_mutations": {"ppo.lr": {"uniform": [1, 0]}}})
    assert "scheduler.hyperparam_mutations.ppo.nope=0.1" in \
        error(scheduler={"type": "pbt", "perturbation_interval": 2,
                         "hyperparam_mutations": {"ppo.nope": {"choice": [0.1]}}})
    assert "mode: 'maximize' is not allowed; choose one of 'max', 'min'" in error(mode="maximize")
    assert "base: nope.yaml is not a file" in error(base="nope.yaml")
    assert "unknown key(s) 'metrics'" in error(metrics="x")
    assert "override 'ppo.lr'" in error(overrides=["ppo.lr"])


def test_numbers_written_like_1e_minus_5_are_numbers(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, base=GLAM_BASE, metric="success_rate", mode="max",
                                   search_space={"ppo.lr": {"loguniform": ["1e-5", "1e-3"]}}))
    from cluster.tune import _domain

    domain = _domain(sweep.config.search_space["ppo.lr"])
    assert (domain.lower, domain.upper) == (1e-5, 1e-3)


# ---- real sweeps on a local Ray ----------------------------------------------------------------
def test_asha_stops_weak_icpi_trials_early(tmp_path, ray_cluster, capsys):
    from cluster.tune import run_sweep

    path = write_sweep(tmp_path, name="asha", base=ICPI_BASE,
                       overrides=["train.total_env_steps=200", "icpi.min_successes=0"],
                       search_space={"agent": {"grid_search": ["tabular_q", "random"]},
                                     "train.seed": {"grid_search": [0, 1]}},
                       metric="regret", mode="min", max_concurrent_trials=1, checkpoint_every=4,
                       scheduler={"type": "asha", "max_t": 16, "grace_period": 2, "reduction_factor": 2})
    results = run_sweep(path, progress=False)
    rows = read_results(results.experiment_dir / "results.csv")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"TERMINATED"}
    iterations = sorted(int(r["iterations"]) for r in rows)
    assert iterations[-1] == 16 and iterations[0] < 16  # ASHA stopped at least one trial at a rung
    assert {(r["agent"], r["train.seed"]) for r in rows} == {(a, s) for a in ("tabular_q", "random") for s in "01"}
    assert all(r["final_regret"] and r["best_regret"] for r in rows)
    best = load_config(results.best_config_path)
    assert (best.agent, best.train.seed) == (results.best_params["agent"], results.best_params["train.seed"])
    assert Path(results.best_checkpoint, "config.yaml").is_file()  # an llmrl checkpoint (llmrl eval reads it)
    out = capsys.readouterr().out
    assert "trial_id" in out and "final_regret" in out and "best trial" in out


@pytest.mark.filterwarnings("ignore:Consider boosting PBT performance")
def test_pbt_exploits_another_trials_checkpoint(tmp_path, ray_cluster):
    from cluster.tune import run_sweep

    path = write_sweep(tmp_path, name="pbt", base=ICPI_BASE, overrides=["train.total_env_steps=300"],
                       search_space={"agent": {"grid_search": ["tabular_q", "random"]}},
                       metric="regret", mode="min", max_iterations=6, checkpoint_every=3,
                       scheduler={"type": "pbt", "perturbation_interval": 3, "quantile_fraction": 0.5, "synch": True,
                                  "hyperparam_mutations": {"icpi.min_successes": {"choice": [0, 1, 2, 3]}}})
    results = run_sweep(path, progress=False)
    exploits = [json.loads(line) for line in (results.experiment_dir / "pbt_global.txt").read_text().splitlines()]
    assert exploits  # [exploited trial, cloned trial, ..., old config, new config]
    continued = []
    for result in results.grid:
        history = result.metrics_dataframe
        own = result.metrics["trial_id"]
        for _, row in history.iterrows():
            origin = row["restored_from_trial"]  # "" before any restore (NaN when read back from progress.csv)
            if isinstance(origin, str) and origin not in ("", own):
                continued.append((own, row))
    assert continued, "no trial continued from another trial's checkpoint"
    for own, row in continued:  # it went on from the clone's state: its counters continue past the checkpoint's
        assert row["algorithm_iteration"] > row["restored_from_iteration"] > 0
        assert row["training_iteration"] > 1 and row["restores"] >= 1
    assert len(read_results(results.experiment_dir / "results.csv")) == 2


def test_actors_of_a_trial_take_bundles_of_their_own_size(ray_cluster):
    """Inside a trial's placement group, RayRuntime pins each actor to a bundle of exactly its size: with "any
    bundle that fits" a 0.5-CPU learner could take the 1-CPU bundle and leave a 1-CPU scorer worker no room."""
    import ray
    from ray.util import placement_group_table
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    class _Trial:  # stands for a Tune trainable (defined here: Ray ships it by value)
        def spawn(self, sizes: list[float]) -> list[list[int]]:
            """Actors of these CPU sizes through a RayRuntime, started, killed again: the bundles they got."""
            from types import SimpleNamespace

            from actors.learner_actor import LearnerHost
            from cluster.runtime import RayRuntime, Resources

            runtime = RayRuntime()
            handles = [runtime.spawn(LearnerHost, lambda: SimpleNamespace(version=0), resources=Resources(cpus))
                       for cpus in sizes]
            assert runtime.get([h.call("version") for h in handles]) == [0] * len(sizes)
            claimed = [runtime._bundles[h] for h in handles]
            runtime.shutdown()
            return claimed

    group = placement_group([{"CPU": 0.25}, {"CPU": 0.5}, {"CPU": 1.0}, {"CPU": 0.25}], strategy="PACK")
    ray.get(group.ready(), timeout=60)
    groups_before = set(placement_group_table())
    trial = ray.remote(_Trial).options(num_cpus=0.25, scheduling_strategy=PlacementGroupSchedulingStrategy(
        group, placement_group_bundle_index=0, placement_group_capture_child_tasks=True)).remote()
    try:
        assert ray.get(trial.spawn.remote([1.0, 0.25, 0.5]), timeout=120) == [[2], [3], [1]]
        assert set(placement_group_table()) == groups_before  # no group of their own
        assert ray.get(trial.spawn.remote([0.5]), timeout=60) == [[1]]  # freed bundles are claimed again
    finally:
        ray.kill(trial)
        remove_placement_group(group)


def test_glam_grid_with_the_real_model(tmp_path, ray_cluster):
    """Two GLAM trials one after the other (~30 s on 2 cores); every actor of a trial (learner, scorer pool and
    worker, env runner) lands in the trial's one placement group, each in a bundle of its own size (a 0.5-CPU
    learner in the 1-CPU worker's bundle would leave the worker no room): no other group is made."""
    from ray.util import placement_group_table

    from cluster.tune import run_sweep

    groups_before = set(placement_group_table())

    path = write_sweep(tmp_path, name="glam", base=GLAM_BASE, max_concurrent_trials=1,
                       overrides=["train.total_env_steps=8", "runner.num_envs=2", "train.steps_per_update=2",
                                  "backend.lora.r=4", "value_head.hidden_sizes=[16]", "pool.cpus_per_worker=1.0",
                                  "learner.cpus=0.5", "runner_cpus=0.25", "ppo.minibatch_size=4",
                                  "ppo.micro_batch_size=4"],
                       search_space={"ppo.lr": {"grid_search": [1e-3, 3e-3]}}, metric="success_rate", mode="max",
                       best_scope="last")
    results = run_sweep(path, progress=False)
    rows = read_results(results.experiment_dir / "results.csv")
    assert len(rows) == 2 and {r["status"] for r in rows} == {"TERMINATED"}
    assert sorted(float(r["ppo.lr"]) for r in rows) == [1e-3, 3e-3]
    assert all(r["finished"] == "True" and int(r["iterations"]) == 2 and r["final_success_rate"] for r in rows)
    best = load_config(results.best_config_path)
    assert best.method == "glam" and best.ppo.lr == results.best_params["ppo.lr"] in (1e-3, 3e-3)
    assert best.train.total_env_steps == 8 and best.backend.lora.r == 4
    new_groups = [g for pg_id, g in placement_group_table().items() if pg_id not in groups_before]
    assert len(new_groups) == 2  # one per trial: trainable, learner, scorer worker, env runner
    assert all(list(g["bundles"].values()) == [{"CPU": 0.25}, {"CPU": 0.5}, {"CPU": 1.0}, {"CPU": 0.25}]
               for g in new_groups)


def test_an_interrupted_sweep_resumes(tmp_path):
    """Ctrl-C (SIGINT) to a real `llmrl tune` process mid-sweep, then `llmrl tune --resume`: every trial ends
    TERMINATED with its full budget, the interrupted one continued from its checkpoint."""
    import os
    import signal
    import subprocess
    import sys
    import time

    path = write_sweep(tmp_path, name="resumable", base=ICPI_BASE,
                       overrides=["train.total_env_steps=2000", "agent=random"],
                       search_space={"train.seed": {"grid_search": [0, 1]}}, metric="regret", mode="min",
                       max_concurrent_trials=1, checkpoint_every=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "cluster.cli", "tune", str(path), "--no-progress"]
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    deadline = time.monotonic() + 240
    while not list((tmp_path / "out").glob("resumable/*/checkpoint_*")):  # the first trial is under way
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[0][-3000:]
        time.sleep(0.5)
    first.send_signal(signal.SIGINT)
    out = first.communicate(timeout=180)[0]
    assert "--resume" in out, out[-3000:]  # the interrupted sweep says how to continue
    rows = read_results(tmp_path / "out" / "resumable" / "results.csv")
    assert {r["status"] for r in rows} != {"TERMINATED"}

    second = subprocess.run(command + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=400)
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]
    rows = read_results(tmp_path / "out" / "resumable" / "results.csv")
    assert len(rows) == 2 and {r["status"] for r in rows} == {"TERMINATED"}
    assert all(r["finished"] == "True" and float(r["env_steps"]) >= 2000 for r in rows)


def test_rllib_trials_sweep_rllib_settings(tmp_path, ray_cluster):
    """`method: rllib` under Tune: a grid over an `rllib:` setting, each trial an RLlib algorithm in the trial's
    process, with our pickle-free checkpoints; the best config loads back as an RLlib run config."""
    from cluster.tune import run_sweep

    path = write_sweep(tmp_path, name="rllib", base=str(ROOT / "configs" / "rllib_dqn_icpi_chain.yaml"),
                       overrides=["train.total_env_steps=200"], max_concurrent_trials=1, checkpoint_every=1,
                       search_space={"rllib.training.lr": {"grid_search": [1e-3, 1e-4]}},
                       metric="mean_return", mode="max", best_scope="last")
    results = run_sweep(path, progress=False)
    rows = read_results(results.experiment_dir / "results.csv")
    assert len(rows) == 2 and {r["status"] for r in rows} == {"TERMINATED"}
    assert sorted(float(r["rllib.training.lr"]) for r in rows) == [1e-4, 1e-3]
    assert all(r["finished"] == "True" and r["final_mean_return"] for r in rows)
    best = load_config(results.best_config_path)
    assert best.method == "rllib" and best.section("training")["lr"] == results.best_params["rllib.training.lr"]
    assert sorted(p.name for p in Path(results.best_checkpoint).iterdir()) == [
        "config.yaml", "driver.json", "driver.safetensors", "rllib.json", "rllib.safetensors", "tune_origin.json"]
