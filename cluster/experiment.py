"""The experiment skeleton: drives any method's algorithm (learners/algorithm.py) in a run directory.

It owns what is not the algorithm: the run directory and its `config.yaml`, metrics (CSV and
TensorBoard), the progress bar, checkpoint cadence and pruning, resume, plots, `summary.json` and
shutdown. `llmrl run` uses `Experiment`; Ray Tune trials use `save_checkpoint` / `restore_checkpoint`.

A run directory:
    config.yaml  metrics.csv  tensorboard/  summary.json  <plots>.png
    checkpoints/checkpoint_000012/   config.yaml, driver.{json,safetensors}, the algorithm's files
"""
from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml
from tqdm import tqdm

from actors.learner_actor import LearnerLost
from cluster.checkpoint import (CheckpointError, latest_checkpoint, prune_checkpoints, restore_rng_state, rng_state,
                                write_checkpoint)
from cluster.config import ConfigError, read_yaml, to_dict
from cluster.methods import algorithm_class, config_from_dict
from cluster.metrics import MetricsLogger, plot_curves
from cluster.runtime import make_runtime
from learners.state_io import load_state, save_state

log = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
SUMMARY_NAME = "summary.json"


def new_run_dir(config: Any) -> Path:
    """OUTPUT_DIR/NAME, or NAME-2, NAME-3... when taken."""
    base = Path(config.train.output_dir) / config.name
    run_dir, k = base, 1
    while run_dir.exists():
        k += 1
        run_dir = base.with_name(f"{base.name}-{k}")
    return run_dir


def read_config(directory: Path, overrides: Sequence[str] = ()) -> Any:
    """The config stored in a run or checkpoint directory (its config.yaml), with dotted overrides."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"{directory} has no {CONFIG_NAME}: is it a run directory written by `llmrl run`?")
    return config_from_dict(read_yaml(path), where=str(path), overrides=overrides)


def write_config(directory: Path, config: Any) -> None:
    (Path(directory) / CONFIG_NAME).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def save_checkpoint(directory: Path, algorithm: Any, config: Any) -> None:
    """A self-contained checkpoint in `directory`: the algorithm's state, the config, the driver's RNG."""
    algorithm.save(Path(directory))
    write_config(directory, config)
    save_state(directory, "driver", {"rng": rng_state(), "iteration": algorithm.iteration})


def restore_checkpoint(directory: Path, algorithm: Any) -> None:
    """Continue `algorithm` from a checkpoint written by `save_checkpoint`."""
    algorithm.restore(Path(directory))
    restore_rng_state(load_state(directory, "driver")["rng"])


class Experiment:
    """One run of `config` (any method) to its budget; `run()` returns the run directory.

    `run_dir` given: resume that run from its latest checkpoint (metrics rows logged after it are
    dropped, so redone iterations appear once). Nothing is created on disk before the algorithm
    has been set up, so a run that cannot start leaves no directory behind.

    A learner actor that dies (LearnerLost from step) restarts the run in this process from its latest
    checkpoint, the same way, at most train.max_restarts times.
    """

    def __init__(self, config: Any, run_dir: Path | None = None, progress: bool = True, runtime: Any = None,
                 **algorithm_options: Any):
        self.config = config
        self.algorithm_options = algorithm_options
        """Passed to the algorithm's constructor (e.g. a shared LLM client in benchmarks)."""
        self.resuming = run_dir is not None
        self.run_dir = Path(run_dir) if run_dir is not None else new_run_dir(config)
        self.progress = progress
        self.runtime = runtime
        self.restarts = 0
        """Restarts from a checkpoint after the learner died."""

    def run(self) -> Path:
        c = self.config
        checkpoint = latest_checkpoint(self.run_dir) if self.resuming else None
        if self.resuming and checkpoint is None:
            raise CheckpointError(f"no checkpoint in {self.run_dir / 'checkpoints'} to resume from")
        runtime = self.runtime or make_runtime(c.use_ray, c.ray)
        try:
            algorithm = self._new_algorithm(runtime)
        except BaseException:
            if self.runtime is None:
                runtime.shutdown()  # actors spawned before the failure
            raise
        bar = None
        try:
            if checkpoint is not None:
                restore_checkpoint(checkpoint, algorithm)
            else:
                self.run_dir.mkdir(parents=True)
            write_config(self.run_dir, c)
            self._announce(algorithm)
            bar = tqdm(total=c.train.total_env_steps, initial=algorithm.env_steps, unit="step",
                       disable=not self.progress, file=sys.stderr)
            resume_after = algorithm.iteration if self.resuming else None
            while True:
                try:
                    with MetricsLogger(self.run_dir, resume_after=resume_after) as logger:
                        self._loop(algorithm, logger, bar)
                    break
                except LearnerLost as lost:
                    checkpoint = self._restart_point(lost)
                    algorithm.stop()
                    algorithm = None  # stopped: not stopped again should the new one fail to start
                    algorithm = self._new_algorithm(runtime)
                    restore_checkpoint(checkpoint, algorithm)
                    self._announce(algorithm)
                    resume_after = algorithm.iteration
                    log.warning("%s; restarted the run from %s", lost, checkpoint)
        finally:
            if bar is not None:
                bar.close()
            if algorithm is not None:
                algorithm.stop()
            if self.runtime is None:
                runtime.shutdown()
        summary = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in algorithm.summary().items()}
        (self.run_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=2))  # NaN (no episode yet) as null
        for plot in algorithm.plots:
            plot_curves(self.run_dir, x=plot.x, ys=list(plot.ys), path=self.run_dir / plot.filename)
        return self.run_dir

    def _new_algorithm(self, runtime: Any) -> Any:
        return algorithm_class(self.config.method)(self.config, runtime, **self.algorithm_options)

    def _announce(self, algorithm: Any) -> None:
        """The algorithm's optional hook, once the run directory exists (GLAM: ray.json for llmrl scale)."""
        announce = getattr(algorithm, "announce", None)
        if announce is not None:
            announce(self.run_dir)

    def _restart_point(self, lost: LearnerLost) -> Path:
        """The checkpoint to restart from after `lost`, counted; LearnerLost naming the limit when none is allowed."""
        allowed = self.config.train.max_restarts
        checkpoint = latest_checkpoint(self.run_dir)
        if self.restarts >= allowed:
            raise LearnerLost(f"{lost}; not restarted: train.max_restarts is {allowed} and {self.restarts} restart(s) "
                              "were made (raise train.max_restarts to restart from the latest checkpoint)") from lost
        if checkpoint is None:
            raise LearnerLost(f"{lost}; not restarted: the run has no checkpoint yet (lower train.checkpoint_every "
                              "to checkpoint sooner)") from lost
        self.restarts += 1
        return checkpoint

    def _loop(self, algorithm: Any, logger: MetricsLogger, bar: tqdm) -> None:
        every = self.config.train.checkpoint_every
        saved = algorithm.iteration
        while not algorithm.finished():
            row = algorithm.step()
            logger.log(algorithm.iteration, row)
            bar.update(algorithm.env_steps - bar.n)
            bar.set_postfix(algorithm.progress(row))
            due = algorithm.iteration // every > saved // every or algorithm.finished()
            if due and algorithm.checkpointable():
                self._checkpoint(algorithm)
                saved = algorithm.iteration

    def _checkpoint(self, algorithm: Any) -> Path:
        path = write_checkpoint(self.run_dir, algorithm.iteration,
                                lambda directory: save_checkpoint(directory, algorithm, self.config))
        prune_checkpoints(self.run_dir, self.config.train.keep_checkpoints)
        return path
