"""`llmrl compare`: step-function curves averaged per group (hand cases), the summary table, and the command on
real runs (two seeds of a random-agent ICPI run, one other config) writing a PNG."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from cluster.cli import main
from cluster.compare import combine, compare, steps_to, value_at
from cluster.config import ConfigError
from cluster.metrics import MetricsLogger

REPO = Path(__file__).resolve().parents[1]


def test_value_at_holds_the_last_point():
    curve = [(0.0, 1.0), (10.0, 3.0), (20.0, 2.0)]
    assert [value_at(curve, x) for x in (0, 5, 10, 19.9, 20, 99)] == [1.0, 1.0, 3.0, 3.0, 2.0, 2.0]
    assert math.isnan(value_at(curve, -1))


def test_group_mean_and_spread_on_the_union_of_xs():
    a = [(0.0, 0.0), (10.0, 0.5), (20.0, 1.0)]
    b = [(5.0, 0.2), (15.0, 0.4), (30.0, 0.6)]
    c = combine("g", [Path("a"), Path("b")], [a, b])
    assert c.xs == [5.0, 10.0, 15.0, 20.0]  # where both are defined: from 5 (b's first) to 20 (a's last)
    assert c.mean == pytest.approx([0.1, 0.35, 0.45, 0.7])
    assert c.low == [0.0, 0.2, 0.4, 0.4] and c.high == [0.2, 0.5, 0.5, 1.0]
    assert c.finals == [1.0, 0.6]
    assert steps_to(c, 0.4) == 15.0 and steps_to(c, 0.9) is None


def _fake_run(path: Path, name: str, points: list[tuple[int, float]]) -> Path:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"method": "icpi", "name": name}))
    with MetricsLogger(path, tensorboard=False) as log:
        for step, (x, y) in enumerate(points, 1):
            log.log(step, {"env_steps": x, "success_rate": y})
    return path


def test_summary_table_and_png(tmp_path):
    runs = [_fake_run(tmp_path / "a", "ppo", [(10, 0.0), (20, 0.5), (30, 0.9)]),
            _fake_run(tmp_path / "a-2", "ppo", [(10, 0.2), (20, 0.7), (30, 0.7)]),
            _fake_run(tmp_path / "b", "random", [(10, 0.3), (30, 0.3)])]
    curves, table = compare(runs, threshold=0.6, output=tmp_path / "out" / "c.png")
    assert [(c.group, len(c.runs)) for c in curves] == [("ppo", 2), ("random", 1)]
    lines = table.splitlines()
    assert lines[0].split() == ["group", "runs", "final", "success_rate", "best", "(mean", "curve)", "x", "to", "0.6"]
    assert lines[1].split() == ["ppo", "2", "0.8", "[0.7,", "0.9]", "0.8", "at", "30", "20"]
    assert lines[2].split() == ["random", "1", "0.3", "0.3", "at", "10", "never"]
    assert (tmp_path / "out" / "c.png").read_bytes()[:4] == b"\x89PNG"
    by_dir, _ = compare(runs, group_by="dir", output=tmp_path / "d.png")
    assert [c.group for c in by_dir] == ["a", "a-2", "b"]
    by_two, _ = compare(runs, group_by="method, name", output=tmp_path / "e.png")
    assert [(c.group, len(c.runs)) for c in by_two] == [("method=icpi, name=ppo", 2), ("method=icpi, name=random", 1)]


def test_bad_input_names_the_fix(tmp_path):
    run = _fake_run(tmp_path / "a", "x", [(1, 0.0)])
    with pytest.raises(ConfigError, match="has no 'loss' column; it has: step, env_steps, success_rate"):
        compare([run], y="loss", output=tmp_path / "c.png")
    with pytest.raises(ConfigError, match="has no metrics.csv: give run directories"):
        compare([tmp_path], output=tmp_path / "c.png")
    with pytest.raises(ConfigError, match="--group-by ppo.lr: .* has no such key"):
        compare([run], group_by="ppo.lr", output=tmp_path / "c.png")


def test_the_command_on_real_runs(tmp_path, capsys):
    out = tmp_path / "runs"
    for seed in (0, 1):
        assert main(["run", str(REPO / "configs" / "icpi_chain.yaml"), "--no-progress", "--set", "agent=random",
                     "--set", "train.total_env_steps=12", "--set", f"train.seed={seed}",
                     "--set", f"train.output_dir={out}"]) == 0
    assert main(["run", str(REPO / "configs" / "icpi_maze.yaml"), "--no-progress", "--set", "agent=random",
                 "--set", "train.total_env_steps=12", "--set", f"train.output_dir={out}"]) == 0
    capsys.readouterr()
    runs = sorted(str(p) for p in out.iterdir())
    assert main(["compare", *runs, "--y", "return", "--output", str(tmp_path / "c.png")]) == 0
    printed = capsys.readouterr().out
    assert "icpi_chain  2" in printed and "icpi_maze   1" in printed
    assert f"2 group(s) of 3 run(s) in {tmp_path / 'c.png'}" in printed
    assert (tmp_path / "c.png").stat().st_size > 1000
