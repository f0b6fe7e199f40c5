"""Fault tolerance with nothing lost: the sequence ledger (hand cases); real GLAM runs whose env runner,
scorer worker or learner actor is killed for real mid-run; a driver SIGKILLed and resumed with --resume
giving exactly the metrics of an uninterrupted run."""
from __future__ import annotations

import math
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import ray
import yaml

from cluster.runtime import RayRuntime
from learners.sequence_ledger import SequenceLedger

TIMING = ("steps_per_s", "time_collect_s", "time_scoring_s", "time_env_step_s", "time_update_s",
          "time_weight_sync_s")
FAULT_COUNTS = ("runner_restarts", "scorer_restarts")


# ---- the ledger ----------------------------------------------------------------------------------
def test_ledger_counts_nothing_for_contiguous_streams():
    ledger = SequenceLedger()
    for start in (0, 4, 8):
        ledger.record(0, 0, start, 4)
        ledger.record(1, 0, start, 4)  # another runner's env 0 is another stream
    assert (ledger.lost, ledger.duplicated) == (0, 0)


def test_ledger_counts_a_gap_as_lost_and_a_repeat_as_duplicated():
    ledger = SequenceLedger()
    ledger.record(0, 1, 0, 4)
    ledger.record(0, 1, 8, 4)  # steps 4..7 never arrived
    assert (ledger.lost, ledger.duplicated) == (4, 0)
    ledger.record(0, 1, 8, 4)  # the same rollout twice
    ledger.record(0, 1, 10, 4)  # overlaps 10, 11; 12, 13 are new
    assert (ledger.lost, ledger.duplicated) == (4, 6)
    ledger.record(0, 1, 14, 2)
    assert (ledger.lost, ledger.duplicated) == (4, 6)


def test_ledger_state_round_trips_through_json():
    import json

    ledger = SequenceLedger()
    ledger.record(2, 3, 0, 5)
    ledger.record(2, 3, 6, 1)
    restored = SequenceLedger(json.loads(json.dumps(ledger.state())))
    restored.record(2, 3, 7, 1)
    restored.record(2, 3, 0, 1)
    assert (restored.lost, restored.duplicated, restored.expected) == (1, 1, {(2, 3): 8})
    with pytest.raises(ValueError, match="count >= 0"):
        restored.record(0, 0, 0, -1)


# ---- real runs with real kills -------------------------------------------------------------------
TINY = {
    "method": "glam", "name": "faults", "backend": {"lora": {"r": 4}}, "value_head": {"hidden_sizes": [16]},
    "pool": {"num_workers": 1, "cpus_per_worker": 0.5}, "learner": {"cpus": 0.5},
    "runner": {"env_id": "llmrl/TextChoice-v0", "num_envs": 2},
    "ppo": {"lr": 1.0e-3, "epochs": 1, "minibatch_size": 8},
    "train": {"total_env_steps": 12, "steps_per_update": 2, "seed": 1},
}
"""3 iterations of 4 env steps through real Ray actors."""


def _config(tmp_path, name, **train):
    from cluster.methods import config_from_dict

    return config_from_dict({**TINY, "name": name, "train": {**TINY["train"], "output_dir": str(tmp_path), **train}})


def _figures(run_dir, drop=()):
    """metrics.csv without the timing columns (and `drop`); NaN as None so rows compare equal."""
    from cluster.metrics import read_metrics

    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()
             if k not in TIMING + tuple(drop)} for row in read_metrics(run_dir)]


@dataclass(frozen=True)
class Kill:
    """Right after the `at`-th `method` call on `cls` actors was sent, kill (ray.kill) `victim(runtime, handle)`:
    at once, so the call is surely in flight (queued or running) when the victim dies, however fast it runs."""

    cls: type
    method: str
    at: int
    victim: Callable = lambda runtime, handle: handle.actor


def scorer_worker(runtime, _):
    """The first worker of the run's scorer pool."""
    from actors.scorer_pool import ScorerPool

    return ray.get(runtime.handles[ScorerPool][-1].actor.workers.remote())[0]


class KillingRuntime(RayRuntime):
    """A real RayRuntime that kills actors for real while a call is in flight, as its `Kill` plans say."""

    def __init__(self, *plans: Kill):
        super().__init__()
        self.plans = plans
        self.handles: dict[type, list] = {}
        self.calls: dict[tuple[type, str], int] = {}
        self.killed = []

    def spawn(self, cls, *args, **kwargs):
        handle = super().spawn(cls, *args, **kwargs)
        self.handles.setdefault(cls, []).append(handle)
        send = handle.call

        def call(method, *a, **kw):
            ref = send(method, *a, **kw)
            key = (cls, method)
            self.calls[key] = self.calls.get(key, 0) + 1
            for plan in self.plans:
                if (plan.cls, plan.method, plan.at) == (cls, method, self.calls[key]):
                    victim = plan.victim(self, handle)
                    ray.kill(victim)
                    self.killed.append(victim)
            return ref

        handle.call = call
        return handle


@pytest.fixture(scope="module")
def reference(tmp_path_factory, ray_cluster):
    """The metrics of the tiny run without faults."""
    from cluster.experiment import Experiment

    run_dir = Experiment(_config(tmp_path_factory.mktemp("reference"), "reference"), progress=False).run()
    return _figures(run_dir)


def test_a_killed_runner_and_a_killed_scorer_worker_lose_nothing(tmp_path, reference):
    """A runner killed mid-rollout redoes that rollout from its last state; a scorer worker killed mid-request
    is restarted by the pool and its shard resent: the run's figures equal the fault-free run's."""
    from actors.env_runner import EnvRunner
    from cluster.experiment import Experiment

    runtime = KillingRuntime(Kill(EnvRunner, "collect", at=2), Kill(EnvRunner, "collect", at=3, victim=scorer_worker))
    try:
        run_dir = Experiment(_config(tmp_path, "killed"), progress=False, runtime=runtime).run()
    finally:
        runtime.shutdown()
    assert len(runtime.killed) == 2
    rows = _figures(run_dir)
    assert [r["runner_restarts"] for r in rows] == [0.0, 1.0, 1.0]
    assert rows[-1]["scorer_restarts"] >= 1.0
    assert all(r["lost_transitions"] == 0.0 and r["duplicated_transitions"] == 0.0 for r in rows)
    assert _figures(run_dir, drop=FAULT_COUNTS) == [{k: v for k, v in r.items() if k not in FAULT_COUNTS}
                                                    for r in reference]


def test_a_killed_learner_restarts_the_run_from_its_latest_checkpoint(tmp_path, reference):
    """The learner actor killed during the 2nd update: the run restarts from checkpoint 1 (new learner, pool and
    runners, all restored) and ends with exactly the fault-free run's figures, each iteration logged once."""
    from actors.learner_actor import LearnerHost
    from cluster.experiment import Experiment

    runtime = KillingRuntime(Kill(LearnerHost, "update", at=2))
    experiment = Experiment(_config(tmp_path, "learner"), progress=False, runtime=runtime)
    try:
        run_dir = experiment.run()
    finally:
        runtime.shutdown()
    assert experiment.restarts == 1 and len(runtime.killed) == 1 and len(runtime.handles[LearnerHost]) == 2
    assert _figures(run_dir) == reference


def test_a_killed_learner_without_restarts_stops_with_an_error_naming_the_field(tmp_path):
    from actors.learner_actor import LearnerHost, LearnerLost
    from cluster.experiment import Experiment

    runtime = KillingRuntime(Kill(LearnerHost, "update", at=1))
    try:
        with pytest.raises(LearnerLost, match="the learner actor died during update.*train.max_restarts is 0"):
            Experiment(_config(tmp_path, "fatal", max_restarts=0), progress=False, runtime=runtime).run()
    finally:
        runtime.shutdown()
    # With restarts allowed, a learner lost before the first checkpoint cannot restart either.
    experiment = Experiment(_config(tmp_path, "early", max_restarts=2), progress=False)
    with pytest.raises(LearnerLost, match="no checkpoint yet"):
        experiment._restart_point(LearnerLost("the learner actor died during update"))


# ---- the driver SIGKILLed -------------------------------------------------------------------------
IN_PROCESS = {**TINY, "use_ray": False, "name": "driver", "learner": {"threads": 1},
              "train": {**TINY["train"], "total_env_steps": 20}}
"""5 iterations in one process (use_ray false: the driver holds the learner, the runners and their RNGs)."""


def test_a_driver_killed_and_resumed_gives_exactly_the_uninterrupted_metrics(tmp_path):
    config = tmp_path / "driver.yaml"
    config.write_text(yaml.safe_dump(IN_PROCESS))
    whole, part = tmp_path / "whole" / "driver", tmp_path / "part" / "driver"
    started = []

    def llmrl(*args):
        log = (tmp_path / f"llmrl{len(started)}.log").open("w")
        started.append(subprocess.Popen([str(Path(".venv/bin/llmrl")), *args, "--no-progress"],
                                        stdout=log, stderr=subprocess.STDOUT))
        return started[-1]

    def log(k):
        return (tmp_path / f"llmrl{k}.log").read_text()[-3000:]

    try:
        assert llmrl("run", str(config), "--set", f"train.output_dir={whole.parent}").wait(timeout=300) == 0, log(0)
        killed = llmrl("run", str(config), "--set", f"train.output_dir={part.parent}")
        checkpoint = part / "checkpoints" / "checkpoint_000002"
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(timeout=30) == -signal.SIGKILL, log(1)  # killed mid-run, not finished
        assert not (part / "summary.json").exists()
        assert llmrl("run", "--resume", str(part)).wait(timeout=300) == 0, log(2)
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
    rows = _figures(part)
    assert [r["updates"] for r in rows] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert rows == _figures(whole)
