"""`llmrl tune SWEEP.yaml`: a Ray Tune sweep over any method's run config (the sweep format: cluster/sweep_config.py).

Each trial is an `LlmrlTrainable` (a Tune class trainable) driving the method's Algorithm (learners/algorithm.py)
in one placement group that Tune reserves for it: a small bundle for the trainable itself, then one bundle per
actor it starts (`resource_bundles`). Inside a trial, `RayRuntime.spawn` and the scorer pool place their actors
into that group instead of making groups of their own.

One Tune iteration is one algorithm step, continued until the algorithm can checkpoint: a GLAM iteration is one
round of rollouts + one PPO update; an ICPI iteration is one whole episode (ICPI saves only between episodes),
so every reported row of an ICPI trial carries that episode's `regret` and `return`. The row reported is the
algorithm's last row plus `env_steps`, `algorithm_iteration`, `algorithm_steps`, `finished` (the algorithm's own
budget reached) and, for checkpoints a trial continued from (a resumed or PBT-exploited trial), `restores` (how
many), `restored_from_trial` and `restored_from_iteration` (which trial saved the last one, at which iteration).
A trial ends when its algorithm reaches its budget (`done`), at the sweep's `max_iterations`, or when the
scheduler stops it. Metrics rows are written by Tune (each trial's progress.csv, result.json and TensorBoard
events under OUTPUT_DIR/NAME/<trial>/), checkpoints by `cluster.experiment.save_checkpoint` (a Tune checkpoint
is also an `llmrl run` checkpoint directory: config.yaml and the algorithm's state).

At the end: a results table (printed, and OUTPUT_DIR/NAME/results.csv), the best trial's params, its run config
(OUTPUT_DIR/NAME/best_config.yaml, for `llmrl run`) and its best checkpoint.
"""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ray import tune

from cluster import plan
from cluster.config import ConfigError, set_dotted, to_dict
from cluster.experiment import restore_checkpoint, save_checkpoint
from cluster.methods import algorithm_class, config_from_dict
from cluster.ray_runtime import ensure_ray
from cluster.runtime import make_runtime
from cluster.sweep_config import Sweep, load_sweep, parse_spec

TRAINABLE_CPUS = 0.25
RESULTS_CSV = "results.csv"
BEST_CONFIG = "best_config.yaml"
ORIGIN = "tune_origin.json"
"""Written into each checkpoint: the trial that saved it, its algorithm iteration (PBT clones across trials) and
the last row it reported."""


# ---- placement ---------------------------------------------------------------------------------
def resource_bundles(config: Any, trainable_cpus: float = TRAINABLE_CPUS) -> list[tuple[str, dict[str, float]]]:
    """(role, bundle) a trial of `config` reserves: the trainable's own bundle first, then its actors
    (cluster/plan.py resource_bundles)."""
    return plan.resource_bundles(config, "trainable", trainable_cpus)


def placement(sweep: Sweep, params: dict[str, Any]) -> tune.PlacementGroupFactory:
    """The placement group of the trial with `params`: every bundle of its run config, packed."""
    config = config_from_dict(sweep.trial_data(params), where=f"trial {params}")
    return tune.PlacementGroupFactory([b for _, b in resource_bundles(config, sweep.config.trainable_cpus)],
                                      strategy="PACK")


# ---- the trainable -----------------------------------------------------------------------------
class LlmrlTrainable(tune.Trainable):
    """One trial: the method's Algorithm on the base config with the trial's dotted params applied."""

    def setup(self, config: dict, base: dict | None = None, cwd: str | None = None):
        if cwd:  # Tune starts trials in their own directory; config paths are relative to the sweep's cwd
            os.chdir(cwd)
        data = base or {}
        for key, value in config.items():
            data = set_dotted(data, key, value)
        self.run_config = config_from_dict(data, where=f"trial {self.trial_id}")
        self.runtime = make_runtime(self.run_config.use_ray, self.run_config.ray)
        self.algorithm = algorithm_class(self.run_config.method)(self.run_config, self.runtime)
        self.restores = 0
        self.restored_from = ("", -1)
        """(trial id, algorithm iteration) of the checkpoint this trial last continued from."""
        self.last_row: dict[str, Any] = {}

    def step(self) -> dict:
        algorithm = self.algorithm
        if algorithm.finished():  # continued from a checkpoint taken at the budget
            return {**self.last_row, "done": True}
        row: dict[str, Any] = {}
        steps = 0
        while True:
            row.update(algorithm.step())
            steps += 1
            if algorithm.checkpointable() or algorithm.finished():
                break
        row.update(env_steps=algorithm.env_steps, algorithm_iteration=algorithm.iteration, algorithm_steps=steps,
                   finished=algorithm.finished(), restores=self.restores, restored_from_trial=self.restored_from[0],
                   restored_from_iteration=self.restored_from[1])
        self.last_row = row
        return {**row, "done": True} if algorithm.finished() else row

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        if not self.algorithm.checkpointable():
            raise RuntimeError(f"trial {self.trial_id}: the algorithm cannot checkpoint now (mid-episode)")
        save_checkpoint(Path(checkpoint_dir), self.algorithm, self.run_config)
        (Path(checkpoint_dir) / ORIGIN).write_text(json.dumps({"trial_id": self.trial_id, "row": self.last_row,
                                                               "iteration": self.algorithm.iteration}))

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        restore_checkpoint(Path(checkpoint_dir), self.algorithm)
        origin = Path(checkpoint_dir) / ORIGIN
        origin = json.loads(origin.read_text()) if origin.is_file() else {"trial_id": "?", "iteration": -1, "row": {}}
        self.last_row = origin["row"]  # reported again if the checkpoint was taken at the budget
        self.restores += 1
        self.restored_from = (origin["trial_id"], origin["iteration"])

    def cleanup(self):
        if getattr(self, "algorithm", None) is not None:
            self.algorithm.stop()
            self.runtime.shutdown()
            self.algorithm = None


# ---- the sweep ---------------------------------------------------------------------------------
@dataclass
class SweepResults:
    """What `run_sweep` returns: Tune's ResultGrid, the results table, the best trial and where things are."""

    grid: Any
    rows: list[dict[str, Any]]
    experiment_dir: Path
    best_params: dict[str, Any] | None = None
    best_config_path: Path | None = None
    best_checkpoint: str | None = None


def _domain(spec: dict) -> Any:
    kind, values = parse_spec("search", spec)
    return {"grid_search": tune.grid_search, "choice": tune.choice}[kind](values) if kind in ("grid_search", "choice") \
        else getattr(tune, kind)(*values)


def _scheduler(sweep: Sweep):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    s = sweep.config.scheduler
    if s.type == "asha":
        return ASHAScheduler(time_attr="training_iteration", max_t=s.max_t, grace_period=s.grace_period or 1,
                             reduction_factor=s.reduction_factor or 2)
    if s.type == "pbt":
        mutations = {key: (parse_spec(key, spec)[1] if "choice" in spec else _domain(spec))
                     for key, spec in s.hyperparam_mutations.items()}
        return PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=s.perturbation_interval,
                                       hyperparam_mutations=mutations, quantile_fraction=s.quantile_fraction or 0.25,
                                       resample_probability=0.25 if s.resample_probability is None
                                       else s.resample_probability, synch=bool(s.synch))
    return FIFOScheduler()


def _experiment_dir(sweep: Sweep, resume: bool) -> Path:
    """OUTPUT_DIR/NAME, or NAME-2, NAME-3... when taken; with resume, the newest of them that exists."""
    base, taken, k = sweep.experiment_dir, [], 1
    path = base
    while path.exists():
        taken.append(path)
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    if not resume:
        return path
    if not taken or not tune.Tuner.can_restore(str(taken[-1])):
        raise ConfigError(f"--resume: no interrupted sweep at {taken[-1] if taken else base} to continue; "
                          f"run `llmrl tune {sweep.path}` without --resume")
    return taken[-1]


def run_sweep(path: str | Path, resume: bool = False, progress: bool = True) -> SweepResults:
    """Run (or, with resume, continue) the sweep in `path`; print and write its results (module docstring)."""
    sweep = load_sweep(path)
    c = sweep.config
    base = config_from_dict(sweep.base_data, where=str(sweep.base_path))
    resource_bundles(base, c.trainable_cpus)  # a method without a resource plan fails here, before Ray starts
    experiment_dir = _experiment_dir(sweep, resume)
    ensure_ray(base.ray)
    trainable = tune.with_resources(
        tune.with_parameters(LlmrlTrainable, base=sweep.base_data, cwd=os.getcwd()),
        resources=lambda params: placement(sweep, params))
    if resume:
        tuner = tune.Tuner.restore(str(experiment_dir), trainable=trainable, resume_errored=True)
    else:
        run = tune.RunConfig(
            name=experiment_dir.name, storage_path=str(experiment_dir.parent), verbose=1 if progress else 0,
            stop={"training_iteration": c.max_iterations} if c.max_iterations else None,
            failure_config=tune.FailureConfig(max_failures=c.max_failures),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=max(c.keep_checkpoints or base.train.keep_checkpoints, 3 if c.scheduler.type == "pbt"
                                else 1),  # PBT clones checkpoints of other trials: keep a few
                checkpoint_frequency=c.checkpoint_every or base.train.checkpoint_every, checkpoint_at_end=True,
                checkpoint_score_attribute=c.metric, checkpoint_score_order=c.mode))
        tuner = tune.Tuner(
            trainable, param_space={key: _domain(spec) for key, spec in c.search_space.items()},
            tune_config=tune.TuneConfig(metric=c.metric, mode=c.mode, num_samples=c.num_samples,
                                        max_concurrent_trials=c.max_concurrent_trials, scheduler=_scheduler(sweep),
                                        search_alg=None),
            run_config=run)
    grid = tuner.fit()
    return report(sweep, grid, experiment_dir)


def report(sweep: Sweep, grid: Any, experiment_dir: Path) -> SweepResults:
    """Print the results table and the best trial; write results.csv and best_config.yaml."""
    c = sweep.config
    keys = sweep.config.param_keys()
    results = {Path(result.path).name: result for result in grid}
    rows = []
    for trial in tune.ExperimentAnalysis(str(experiment_dir)).trials:  # each trial's status and (PBT: latest) config
        result = results.get(Path(trial.path).name)
        metrics = (result.metrics if result else None) or {}
        history = result.metrics_dataframe if result else None
        values = [v for v in (history[c.metric] if history is not None and c.metric in history else [])
                  if isinstance(v, (int, float)) and math.isfinite(v)]
        checkpoint = result.get_best_checkpoint(c.metric, c.mode) if values and result.best_checkpoints else None
        rows.append({"trial_id": trial.trial_id, **{key: trial.config.get(key) for key in keys},
                     f"final_{c.metric}": metrics.get(c.metric),
                     f"best_{c.metric}": (max if c.mode == "max" else min)(values) if values else None,
                     "iterations": metrics.get("training_iteration", 0), "env_steps": metrics.get("env_steps"),
                     "status": trial.status, "finished": bool(metrics.get("finished", False)),
                     "checkpoint": checkpoint.path if checkpoint else None, "path": trial.path})
    rows.sort(key=lambda r: r["trial_id"])
    with (experiment_dir / RESULTS_CSV).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["trial_id"])
        writer.writeheader()
        writer.writerows(rows)
    shown = ["trial_id", *keys, f"final_{c.metric}", f"best_{c.metric}", "iterations", "status"]
    print(_table(rows, shown))
    unfinished = [r["trial_id"] for r in rows if r["status"] not in ("TERMINATED", "ERROR")]
    if unfinished:
        print(f"llmrl tune: the sweep was interrupted ({len(unfinished)} trials unfinished); continue it with "
              f"`llmrl tune {sweep.path} --resume`")
    out = SweepResults(grid, rows, experiment_dir)
    try:
        best = grid.get_best_result(c.metric, c.mode, scope=c.best_scope)
    except RuntimeError as e:
        print(f"llmrl tune: no best trial ({e}); results {experiment_dir / RESULTS_CSV}")
        return out
    out.best_params = {key: best.config.get(key) for key in keys}
    config = config_from_dict(sweep.trial_data(out.best_params), where="best trial")
    out.best_config_path = experiment_dir / BEST_CONFIG
    header = (f"# The best trial of sweep {sweep.path} ({c.metric}, {c.mode}, scope {c.best_scope}): "
              f"{Path(best.path).name}\n# " + ", ".join(f"{k}={v!r}" for k, v in out.best_params.items()) + "\n")
    out.best_config_path.write_text(header + yaml.safe_dump(to_dict(config), sort_keys=False))
    checkpoint = best.get_best_checkpoint(c.metric, c.mode) if best.best_checkpoints else None
    out.best_checkpoint = checkpoint.path if checkpoint else (best.checkpoint.path if best.checkpoint else None)
    print(f"llmrl tune: best trial {Path(best.path).name}: {out.best_params} ({c.metric} "
          f"{best.metrics.get(c.metric)}); config {out.best_config_path} (llmrl run it); best checkpoint "
          f"{out.best_checkpoint}; results {experiment_dir / RESULTS_CSV}; trials {experiment_dir}")
    return out


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)

    cells = [[cell(r.get(col)) for col in columns] for r in rows]
    widths = [max([len(col)] + [len(row[i]) for row in cells]) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
