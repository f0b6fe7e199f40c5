"""`llmrl scale` on a real running GLAM run (use_ray, its own embedded Ray in another process): the run's
scorer pool is found through RUN_DIR/ray.json, resized, and the metrics' scorer_workers column shows it."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_jobs import head  # noqa: F401  (a real Ray head with a dashboard and token auth, for the job path)

from cluster.cli import main
from cluster.scale import RAY_FILE, ScaleError, job_prefix, pool_actor_name, read_ray_file

LLMRL = os.path.join(os.path.dirname(sys.executable), "llmrl")


def test_pool_names_carry_the_ray_job_id_inside_a_job(monkeypatch):
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert pool_actor_name().startswith("llmrl-pool-") and pool_actor_name() != pool_actor_name()
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"metadata": {"job_submission_id": "llmrl-x-1"}}))
    assert pool_actor_name().startswith(job_prefix("llmrl-x-1"))


def test_a_directory_without_ray_json_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(ScaleError, match="not a running run with use_ray"):
        read_ray_file(tmp_path)
    assert main(["scale", str(tmp_path), "--scorers", "2"]) == 2
    assert "not a running run" in capsys.readouterr().err
    assert main(["scale", str(tmp_path), "--scorers", "0"]) == 2


def _column(run_dir: Path, name: str) -> list[float]:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with path.open() as f:
        return [float(row[name]) for row in csv.DictReader(f) if row.get(name)]


def test_llmrl_scale_resizes_a_running_glam_run(tmp_path):
    run = subprocess.Popen(
        [LLMRL, "run", "configs/glam_textchoice.yaml", "--no-progress", "--set", f"train.output_dir={tmp_path}",
         "--set", "name=scaled", "--set", "train.total_env_steps=4000", "--set", "train.steps_per_update=2",
         "--set", "runner.num_envs=2", "--set", "train.checkpoint_every=1000", "--set", "pool.cpus_per_worker=0.5",
         "--set", "ray.num_cpus=2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_dir = tmp_path / "scaled"
    try:
        deadline = time.monotonic() + 240
        while not _column(run_dir, "scorer_workers"):  # ray.json is written before the first step
            assert run.poll() is None and time.monotonic() < deadline, run.stdout.read() if run.poll() else "slow"
            time.sleep(0.5)
        assert _column(run_dir, "scorer_workers")[0] == 1.0
        info = json.loads((run_dir / RAY_FILE).read_text())
        assert info["namespace"] == "llmrl" and info["actor"].startswith("llmrl-pool-")
        done = subprocess.run([LLMRL, "scale", str(run_dir), "--scorers", "2"], capture_output=True, text=True,
                              timeout=240)
        assert done.returncode == 0, done.stderr
        assert "now has 2 scorer workers" in done.stdout
        rows = len(_column(run_dir, "scorer_workers"))
        while len(_column(run_dir, "scorer_workers")) <= rows:  # a round finished after the scale
            assert run.poll() is None and time.monotonic() < deadline + 240
            time.sleep(0.5)
        assert _column(run_dir, "scorer_workers")[-1] == 2.0
    finally:
        run.send_signal(signal.SIGINT)  # the run stops its actors, its Ray, and removes ray.json
        out, _ = run.communicate(timeout=120)
    assert not (run_dir / RAY_FILE).exists(), out


@pytest.mark.slow  # ~150 s on a busy 2-core machine: a head of its own and a GLAM run as a Ray Job
def test_llmrl_scale_by_job_id_resizes_a_submitted_run(head, tmp_path):
    from test_jobs import job_id_of, wait_status

    sub = head.llmrl("submit", "configs/glam_textchoice.yaml", "--set", f"train.output_dir={tmp_path}", "--set",
                     "name=job", "--set", "train.total_env_steps=4000", "--set", "train.steps_per_update=2",
                     "--set", "runner.num_envs=2", "--set", "train.checkpoint_every=1000",
                     "--set", "pool.cpus_per_worker=0.5")
    assert sub.returncode == 0, sub.stderr
    job_id, run_dir = job_id_of(sub.stdout), tmp_path / "job"
    try:
        deadline = time.monotonic() + 300
        while not _column(run_dir, "scorer_workers"):
            assert time.monotonic() < deadline and wait_status(head, job_id, "RUNNING", 1) == "RUNNING"
            time.sleep(1.0)
        done = head.llmrl("scale", job_id, "--scorers", "2", timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert re.search(rf"{job_prefix(job_id)}\w+ now has 2 scorer workers", done.stdout), done.stdout
        rows = len(_column(run_dir, "scorer_workers"))
        while len(_column(run_dir, "scorer_workers")) <= rows:
            assert time.monotonic() < deadline + 300
            time.sleep(1.0)
        assert _column(run_dir, "scorer_workers")[-1] == 2.0
    finally:
        head.client().stop_job(job_id)
        assert wait_status(head, job_id, "STOPPED", timeout_s=120) == "STOPPED"
