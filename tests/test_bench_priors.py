"""`llmrl bench priors`: the figures it computes from metrics rows."""
from __future__ import annotations

import math

from benchmarks.priors import steps_to_reach, summarise
from cluster.cli import build_parser


def test_steps_to_reach_the_target_and_never():
    rows = [{"env_steps": 10.0, "episodes": 0, "success_rate": None},
            {"env_steps": 20.0, "episodes": 1, "success_rate": 1.0},  # one lucky episode: not a full window
            {"env_steps": 30.0, "episodes": 2, "success_rate": 0.5},
            {"env_steps": 40.0, "episodes": 3, "success_rate": 0.95},
            {"env_steps": 50.0, "episodes": 4, "success_rate": 0.8}]
    assert steps_to_reach(rows, 0.9, window=2) == 40.0 and steps_to_reach(rows, 0.99, window=2) == math.inf
    assert steps_to_reach(rows, 0.9, window=1) == 20.0


def test_summary_takes_the_median_over_seeds_and_counts_failures():
    runs = [{"env": "lake", "arm": "dqn", "steps_to_target": s, "final_success": f}
            for s, f in ((100.0, 1.0), (300.0, 0.9), (math.inf, 0.2))]
    table = summarise(runs, 0.9)["lake/dqn"]
    assert table["median_steps_to_target"] == 300.0 and table["seeds_reached"] == 2 and table["seeds"] == 3
    assert abs(table["final_success"] - 0.7) < 1e-12


def test_cli_accepts_env_and_arm_lists():
    args = build_parser().parse_args(["bench", "priors", "--envs", "frozenlake", "--arms", "dqn,exact",
                                      "--set", "proposals.k=3"])
    assert args.envs == ["frozenlake"] and args.arms == ["dqn", "exact"] and args.overrides == ["proposals.k=3"]
