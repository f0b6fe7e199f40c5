"""`llmrl bench scaling` runs end to end on a tiny workload and prints its table."""
from __future__ import annotations

import re

import pytest

from cluster.cli import main

pytestmark = pytest.mark.usefixtures("ray_cluster")


def test_bench_scaling_prints_throughput_per_size_and_the_join_time(capsys, tmp_path):
    assert main(["bench", "scaling", "--workers", "1,2", "--contexts", "4", "--repeats", "1",
                 "--json", str(tmp_path / "scaling.json")]) == 0
    out = capsys.readouterr().out
    assert "machine: " in out
    assert re.search(r"^\s+1\s+[\d.]+\s+1\.00\s+True$", out, re.M)
    assert re.search(r"^\s+2\s+[\d.]+\s+[\d.]+\s+True$", out, re.M)  # the same scores with 2 workers
    assert re.search(r"join: a worker added to the running pool served its first shard after [\d.]+-[\d.]+ s", out)
    assert re.search(r"requests in (\d+), answers out \1, failed 0", out)
