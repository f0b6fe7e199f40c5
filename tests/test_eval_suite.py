"""`llmrl eval --suite`: interval math against hand values, suite files and their errors, and the command on a
real tiny GLAM checkpoint with the random and zero-shot rows (CSV columns, the table, the chart)."""
from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cluster.cli import main
from cluster.config import ConfigError
from cluster.eval_suite import SuiteTest, load_suite, mean_interval, resolve_env, summarize, wilson_interval

REPO = Path(__file__).resolve().parents[1]


def test_wilson_interval_by_hand():
    # p = 5/10, z = 1.96: centre (0.5 + 0.19208) / 1.38415 = 0.5; half 1.96 * sqrt(0.025 + 0.0096040) / 1.38415
    assert wilson_interval(5, 10) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)  # not (0, 0): few episodes
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_mean_interval_by_hand():
    mean, low, high = mean_interval([1.0, 2.0, 3.0])  # sd 1, half-width 1.96 / sqrt(3)
    assert (mean, high - mean) == pytest.approx((2.0, 1.959964 / 3 ** 0.5))
    assert mean_interval([4.0]) == (4.0, 4.0, 4.0)


def test_summarize_counts_every_episode():
    episodes = [SimpleNamespace(success=s, ret=r) for s, r in ((True, 1.0), (False, 0.0), (True, 0.5), (False, 0.0))]
    row = summarize("t", "llmrl/x", "random", episodes, seeds=2)
    assert (row.episodes, row.seeds, row.success_rate, row.mean_return) == (4, 2, 0.5, 0.375)


def test_the_glam_suite_and_bad_suites(tmp_path):
    suite = load_suite("glam")
    assert suite.tests[0].env == "checkpoint" and "llmrl/BabyAI-GoToLocal-SynonymActions-v0" in [t.env for t in suite.tests]
    with pytest.raises(ConfigError, match="--suite nope: no such suite; known: glam"):
        load_suite("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "b", "tests": [{"name": "x", "env": "llmrl/Nope-v0"}]}))
    with pytest.raises(ConfigError, match="test 'x': env 'llmrl/Nope-v0' is not registered"):
        load_suite(str(bad))
    bad.write_text(yaml.safe_dump({"name": "b", "tests": [{"name": "x", "env": "checkpoint"}] * 2}))
    with pytest.raises(ConfigError, match="give every test a different name"):
        load_suite(str(bad))
    with pytest.raises(ConfigError, match="needs a CHECKPOINT"):
        resolve_env(SuiteTest("train", "checkpoint"), None)
    assert resolve_env(SuiteTest("train", "checkpoint", {"b": 2}), ("llmrl/a", {"a": 1, "b": 1})) == (
        "llmrl/a", {"a": 1, "b": 2})


def test_suite_on_a_real_checkpoint(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["run", str(REPO / "configs" / "glam_textchoice.yaml"), "--no-progress", "--set", "use_ray=false",
                 "--set", "train.total_env_steps=8", "--set", f"train.output_dir={runs}"]) == 0
    checkpoint = sorted((runs / "glam_textchoice" / "checkpoints").iterdir())[-1]
    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump({"name": "tiny", "episodes": 4, "seeds": [1, 2], "num_envs": 2, "tests": [
        {"name": "training task", "env": "checkpoint"}, {"name": "again", "env": "llmrl/TextChoice-v0"}]}))
    capsys.readouterr()
    assert main(["eval", str(checkpoint), "--suite", str(suite), "--output-dir", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    with open(tmp_path / "eval" / "eval_tiny.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["test"], r["policy"]) for r in rows] == [
        (t, p) for t in ("training task", "again") for p in ("trained", "random", "zero-shot")]
    assert all(r["episodes"] == "8" and r["seeds"] == "2" for r in rows)
    assert all(float(r["success_low"]) <= float(r["success_rate"]) <= float(r["success_high"]) for r in rows)
    assert "training task  trained" in printed and "8 (2 seeds)" in printed
    assert (tmp_path / "eval" / "eval_tiny.png").read_bytes()[:4] == b"\x89PNG"
    # a suite of baselines needs no checkpoint; the trained row does
    assert main(["eval", "--suite", str(suite), "--policies", "random"]) == 2
    assert "uses env: checkpoint, which needs a CHECKPOINT" in capsys.readouterr().err
    assert main(["eval", "--suite", str(suite)]) == 2
    assert "needs a CHECKPOINT (or --policies random,zero-shot)" in capsys.readouterr().err


def test_an_interrupted_suite_keeps_the_rows_it_finished(tmp_path, capsys):
    suite = tmp_path / "broken.yaml"
    suite.write_text(yaml.safe_dump({"name": "broken", "episodes": 2, "num_envs": 2, "tests": [
        {"name": "fine", "env": "llmrl/TextChoice-v0"},
        {"name": "bad kwargs", "env": "llmrl/TextChoice-v0", "kwargs": {"no_such_argument": 1}}]}))
    with pytest.raises(TypeError, match="no_such_argument"):
        main(["eval", "--suite", str(suite), "--policies", "random", "--output-dir", str(tmp_path / "eval")])
    with open(tmp_path / "eval" / "eval_broken.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["test"], r["policy"], r["episodes"]) for r in rows] == [("fine", "random", "2")]
    assert "llmrl eval: fine / random: success" in capsys.readouterr().out


def test_shipped_run_suites_load():
    icpi, priors = load_suite("icpi"), load_suite("priors")
    assert icpi.runs and list(icpi.policies) == ["icpi", "tabular_q", "random"] and len(icpi.tests) == 6
    assert priors.runs and priors.policies["dqn"] == ["dqn.use_prior=false"]


def test_a_suite_mixing_kinds_or_without_policies_is_refused(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "tests": [{"name": "a", "env": "llmrl/TextChoice-v0"},
                                                           {"name": "b", "config": "configs/icpi_chain.yaml"}]}))
    with pytest.raises(ConfigError, match="all env tests .* or all config tests"):
        load_suite(str(path))
    path.write_text(yaml.safe_dump({"name": "s", "tests": [{"name": "b", "config": "configs/icpi_chain.yaml"}]}))
    with pytest.raises(ConfigError, match="a run suite lists its policies"):
        load_suite(str(path))
    path.write_text(yaml.safe_dump({"name": "s", "tests": [{"name": "b", "env": "x", "config": "y"}]}))
    with pytest.raises(ConfigError, match="give `env` .* or `config` .*, one of them"):
        load_suite(str(path))


def test_a_run_suite_scores_regret_over_seeds(tmp_path, capsys):
    suite = tmp_path / "runs.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "mini", "seeds": [0, 1], "last_episodes": 3, "plot": "regret",
        "policies": {"tabular_q": ["agent=tabular_q"], "random": ["agent=random"]},
        "tests": [{"name": "chain", "config": "configs/icpi_chain.yaml", "overrides": ["train.total_env_steps=30"]}]},
        sort_keys=False))
    assert main(["eval", "--suite", str(suite), "--output-dir", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    with open(tmp_path / "eval" / "eval_mini.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["test"], r["policy"], r["episodes"], r["seeds"]) for r in rows] == [
        ("chain", "tabular_q", "6", "2"), ("chain", "random", "6", "2")]
    for r in rows:
        assert float(r["regret_low"]) <= float(r["regret"]) <= float(r["regret_high"])
        assert r["success_rate"] == "nan"  # ICPI logs return and regret, not success
    assert "mean regret [95% CI]" in printed and "6 (2 seeds)" in printed
    assert (tmp_path / "eval" / "eval_mini.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((tmp_path / "eval" / "runs_mini").iterdir())) == 4  # one run per policy and seed
    assert main(["eval", "--suite", str(suite), "--policies", "dqn"]) == 2
    assert "choose among tabular_q, random" in capsys.readouterr().err
