"""`llmrl score`: JSONL in, JSONL out, in order; bad lines named by number, nothing else lost."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from cluster.cli import main

GOOD = {"context": "The capital of France is", "candidates": [" Paris", " London"]}
LINES = [
    json.dumps(GOOD),
    '{"context": "oops", "candidates": [" a"]',  # not JSON
    json.dumps({"context": "Action:", "candidates": []}),  # empty candidate list
    "",  # blank lines are skipped
    json.dumps({"context": "Action:", "candidates": [" go forward", " turn left", " toggle"]}),
    json.dumps({"prompt": "x", "candidates": ["y"]}),  # wrong keys
    json.dumps({"context": "go forward " * 5000, "candidates": [" a"]}),  # longer than the window
]


def test_scores_good_lines_and_names_bad_ones(tmp_path, capsys, backend):
    source, sink = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("\n".join(LINES) + "\n")
    status = main(["score", "--input", str(source), "--output", str(sink), "--workers", "0", "--dtype", "float32"])
    assert status == 1
    records = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3, 5, 6, 7]
    assert records[0]["logprobs"] == backend.score([GOOD["context"]], [GOOD["candidates"]]).logprobs[0]
    assert records[0]["version"] == 0 and len(records[3]["logprobs"]) == 3
    errors = capsys.readouterr().err
    assert "line 2: not valid JSON" in records[1]["error"]
    assert "line 3: the context has an empty candidate list" in records[2]["error"]
    assert 'line 6: expected an object with exactly the keys "context"' in records[4]["error"]
    assert "line 7:" in records[5]["error"] and "model window" in records[5]["error"]
    for number in (2, 3, 6, 7):
        assert f"line {number}:" in errors
    assert "4 line(s) could not be scored" in errors


def test_missing_input_file(tmp_path, capsys):
    assert main(["score", "--input", str(tmp_path / "nope.jsonl"), "--workers", "0"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_console_script_through_ray_workers(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(GOOD) for _ in range(3)) + "\n")
    llmrl = os.path.join(os.path.dirname(sys.executable), "llmrl")
    done = subprocess.run([llmrl, "score", "--input", str(source), "--workers", "2", "--cpus-per-worker", "0.5"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3]
    assert records[0]["logprobs"] == records[2]["logprobs"] and records[0]["logprobs"][0] > records[0]["logprobs"][1]
