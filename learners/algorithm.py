"""The algorithm contract: what every method (GLAM's PPO, ICPI, ...) implements, so that `llmrl run`,
`llmrl tune` and a Ray Job drive the same object (the Ray Tune trainable shape).

    algorithm = Method(config, runtime)   # setup: build the parts through the runtime
    row = algorithm.step()                # one iteration -> a metrics row
    algorithm.save(directory) / algorithm.restore(directory)
    algorithm.stop()

The experiment skeleton (`cluster/experiment.py`) owns everything else: the run directory, metrics,
the progress bar, checkpoint cadence, resume, plots and summary.json. A new method is a folder in
learners/ with a root config (fields `method`, `name`, `use_ray`, `ray`, and a `train` section extending
ScheduleConfig) and an Algorithm class (its `config_class` the root config),
plus one line in `cluster/methods.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from cluster.config import check_range


@dataclass(frozen=True)
class Plot:
    """A PNG the skeleton draws from the metrics at the end of a run."""

    filename: str
    x: str
    ys: tuple[str, ...]


@dataclass(frozen=True)
class ScheduleConfig:
    """How long to run, where to write, how often to checkpoint (every method's `train:` section)."""

    total_env_steps: int = 256
    """Stop after this many env steps (all envs together)."""
    seed: int = 0
    """Seeds the method's randomness (envs, sampling, minibatch order)."""
    output_dir: str = "runs"
    """Runs are written to OUTPUT_DIR/NAME."""
    checkpoint_every: int = 1
    """Write a checkpoint every this many iterations (and always at the end)."""
    keep_checkpoints: int = 3
    """Checkpoints kept on disk (the newest)."""
    max_restarts: int = 3
    """Faults survived: a learner actor that dies (an algorithm's step raises LearnerLost) restarts the run
    from its latest checkpoint at most this many times per run; a GLAM env runner that dies redoes its
    rollout at most this many times in a row. 0: the first such death stops the run."""

    def __post_init__(self):
        check_range(self, "total_env_steps", "checkpoint_every", "keep_checkpoints", ge=1)
        check_range(self, "max_restarts", ge=0)


class Algorithm(Protocol):
    """One method's training loop, step by step; built as `cls(config, runtime)`."""

    plots: ClassVar[tuple[Plot, ...]]
    """Drawn from metrics.csv when the run ends."""

    iteration: int
    """Iterations done: the metrics' step column and the checkpoint number."""
    env_steps: int
    """Env steps done (all envs together): the progress bar."""

    @staticmethod
    def resource_roles(config: Any) -> list[tuple[str, dict[str, float]]]:
        """(role, placement-group bundle) of every actor a run of `config` starts (Tune reserves them per trial)."""

    def step(self) -> dict[str, float]:
        """One iteration (GLAM: rollouts + one PPO update; ICPI: one env step); its metrics row."""

    def finished(self) -> bool:
        """Whether the run has reached its budget."""

    def checkpointable(self) -> bool:
        """Whether `save` may run now (ICPI: between episodes)."""

    def save(self, directory: Path) -> None:
        """Everything needed to continue, written with learners.state_io into `directory`."""

    def restore(self, directory: Path) -> None:
        """Continue from what `save` wrote."""

    def progress(self, row: dict[str, float]) -> dict[str, str]:
        """The figures the progress bar shows after `row`."""

    def summary(self) -> dict[str, Any]:
        """Headline numbers of the run (summary.json)."""

    def stop(self) -> None:
        """Release actors and pools (the runtime's Ray, if any, keeps running)."""

    # Optional: `announce(run_dir)`, called once the run directory exists (and again after a restart), for
    # what other processes look up there while the run goes on (GLAM: RUN_DIR/ray.json for `llmrl scale`).
