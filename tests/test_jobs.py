"""`llmrl submit` / `llmrl jobs` against a real Ray head started here on 127.0.0.1 with token authentication.

The head has its own temp dir (so its ray_current_cluster file is there, not in /tmp/ray: no `ray.init()` of
this process or of other tests can join it), its own free ports and a token generated here. Only the `ray start`
subprocess's environment turns token auth on; CLI calls name the token through their own environment (a
subprocess, or this process with monkeypatched variables and an explicit header). The head is stopped by PID
(never `ray stop`). About 70 s on a busy 2-core machine."""
from __future__ import annotations

import csv
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cluster import jobs
from cluster.cli import main

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
RAY = str(Path(sys.executable).with_name("ray"))
TOKEN_VARS = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_ADDRESS")


def free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on 127.0.0.1 (never Ray's defaults 8265 / 52365)."""
    socks, ports = [], []
    while len(ports) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        socks.append(s)
        if port not in (8265, 52365, 6379, 10001):
            ports.append(port)
    for s in socks:
        s.close()
    return ports


def clean_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment without any Ray address or token, plus `extra` (HOME replaced when given)."""
    env = {k: v for k, v in os.environ.items() if k not in TOKEN_VARS}
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra)
    return env


def head_pids(temp_dir: Path) -> dict[str, list[int]]:
    """PIDs of the processes whose command line names `temp_dir` (from /proc), by kind: raylet, gcs, other."""
    kinds: dict[str, list[int]] = {"raylet": [], "gcs": [], "other": []}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if str(temp_dir) in args:
            program = args.split(" ", 1)[0]
            kind = "raylet" if program.endswith("/raylet") else "gcs" if program.endswith("/gcs_server") else "other"
            kinds[kind].append(int(proc.name))
    return kinds


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_head(temp_dir: Path, grace_s: float = 5.0) -> None:
    """SIGTERM the raylet, then agents/dashboard/others, then the GCS; SIGKILL whatever is left after a grace."""
    kinds = head_pids(temp_dir)
    for kind in ("raylet", "other", "gcs"):
        for pid in kinds[kind]:
            _signal(pid, signal.SIGTERM)
        time.sleep(0.5)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for pids in kinds.values() for p in pids):
        time.sleep(0.2)
    for pid in {p for pids in [*kinds.values(), *head_pids(temp_dir).values()] for p in pids}:
        _signal(pid, signal.SIGKILL)


class Head:
    """A started head: its dashboard address, token file, temp dir."""

    def __init__(self, address: str, token_file: Path, temp_dir: Path, home: Path):
        self.address, self.token_file, self.temp_dir, self.home = address, token_file, temp_dir, home

    def env(self, **extra: str) -> dict[str, str]:
        """A client environment that sends this head's token (and nothing else of Ray's)."""
        return clean_env(self.home, RAY_AUTH_TOKEN_PATH=str(self.token_file), **extra)

    def llmrl(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([PYTHON, "-m", "cluster.cli", *args, "--address", self.address], cwd=REPO,
                              env=env or self.env(), capture_output=True, text=True, timeout=timeout)

    def client(self):
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.address, headers=jobs.auth_headers(self.token_file.read_text().strip()))


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    base = tmp_path_factory.mktemp("jobs")
    temp_dir = Path(tempfile.mkdtemp(prefix="llmrl-rh-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    token_file = base / "token"
    token_file.write_text(secrets.token_hex(32))
    home = base / "home"  # no ~/.ray/auth_token of this machine's user
    home.mkdir()
    gcs, dashboard, agent, agent_grpc, client_port, metrics, runtime_env = free_ports(7)
    env = clean_env(home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file))
    start = subprocess.run(
        [RAY, "start", "--head", "--port", str(gcs), "--num-cpus", "2",
         "--temp-dir", str(temp_dir), "--disable-usage-stats", "--include-dashboard", "true",
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--dashboard-agent-listen-port",
         str(agent), "--dashboard-agent-grpc-port", str(agent_grpc), "--ray-client-server-port", str(client_port),
         "--metrics-export-port", str(metrics), "--runtime-env-agent-port", str(runtime_env)],
        env=env, capture_output=True, text=True, timeout=180)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        started = head_pids(temp_dir)
        assert started["raylet"] and started["gcs"], started  # so the check after stopping means something
        yield Head(f"http://127.0.0.1:{dashboard}", token_file, temp_dir, home)
    finally:
        stop_head(temp_dir)
        left = head_pids(temp_dir)
        if not any(left.values()):
            shutil.rmtree(temp_dir, ignore_errors=True)
        assert not any(left.values()), left


def job_id_of(output: str) -> str:
    match = re.search(r"submitted job (\S+) to", output)
    assert match, output
    return match.group(1)


def wait_status(head: Head, job_id: str, want: str, timeout_s: float = 120) -> str:
    client, deadline = head.client(), time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        status = str(client.get_job_status(job_id).value)
        if status == want or status in jobs.TERMINAL:
            return status
        time.sleep(0.5)
    return status


# ---- against the head --------------------------------------------------------------------------------------
@pytest.fixture
def cli(head, monkeypatch, capsys):
    """`llmrl ... --address HEAD` in this process, with only the head's token in the environment (sent as an
    explicit header, so this process's own Ray state cannot change it): (exit status, stdout, stderr)."""
    def call(*args: str, token: str | None = None) -> tuple[int, str, str]:
        for var in TOKEN_VARS:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HOME", str(head.home))
        if token is None:
            monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(head.token_file))
        else:
            monkeypatch.setenv("RAY_AUTH_TOKEN", token)
        capsys.readouterr()
        code = main([*args, "--address", head.address])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_submit_runs_to_success_and_writes_metrics(head, cli, tmp_path):
    out_dir = tmp_path / "runs"
    # the real command, in its own process, with the token only in its environment
    sub = head.llmrl("submit", "configs/icpi_chain.yaml", "--set", "agent=random", "--set",
                     "train.total_env_steps=10", "--set", f"train.output_dir={out_dir}")
    assert sub.returncode == 0, sub.stderr
    job_id = job_id_of(sub.stdout)
    assert re.fullmatch(r"llmrl-icpi_chain-\d{8}-\d{6}-[0-9a-f]{4}", job_id)
    assert f"run directory: {out_dir / 'icpi_chain'} (or" in sub.stdout
    assert f"llmrl jobs logs {job_id} --follow" in sub.stdout

    code, out, err = cli("jobs", "logs", job_id, "--follow")
    assert code == 0, out + err
    assert "llmrl run: done" in out and f"{job_id} SUCCEEDED" in err
    with open(out_dir / "icpi_chain" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and int(rows[-1]["step"]) >= 10

    assert cli("jobs", "status", job_id)[1].startswith(f"{job_id}: SUCCEEDED")
    assert "llmrl run: done" in cli("jobs", "logs", job_id)[1]


def test_stop_a_running_job(head, cli, tmp_path):
    code, out, err = cli("submit", "configs/icpi_chain.yaml", "--set", "agent=random", "--set",
                         "train.total_env_steps=100000000", "--set", f"train.output_dir={tmp_path / 'runs'}")
    assert code == 0, err
    job_id = job_id_of(out)
    assert wait_status(head, job_id, "RUNNING") == "RUNNING"
    code, out, err = cli("jobs", "stop", job_id)
    assert code == 0 and f"{job_id}: stop requested" in out, out + err
    assert wait_status(head, job_id, "STOPPED", timeout_s=60) == "STOPPED"
    code, out, err = cli("jobs", "logs", job_id, "--follow")
    assert code == 1 and f"{job_id} STOPPED" in err
    assert "already ended (STOPPED)" in cli("jobs", "stop", job_id)[1]


def test_list_shows_the_jobs(cli):
    code, out, err = cli("jobs", "list")
    assert code == 0, err
    listed = re.findall(r"^(llmrl-icpi_chain-\S+)\s+(\w+)", out, flags=re.M)
    assert {status for _, status in listed} >= {"SUCCEEDED", "STOPPED"}, out


def _one_line_error(code: int, err: str, command: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"llmrl {command}: error: "), err
    return last


def test_no_token_is_refused_with_one_line(head):
    # its own process: no token anywhere (this process's Ray, if any, could add its own)
    result = head.llmrl("jobs", "list", env=clean_env(head.home))
    last = _one_line_error(result.returncode, result.stderr, "jobs")
    assert "(401)" in last and "RAY_AUTH_MODE=token" in last and "RAY_AUTH_TOKEN_PATH" in last


def test_wrong_token_is_refused_with_one_line(cli):
    last = _one_line_error(*cli("jobs", "list", token="0" * 64)[::2], "jobs")
    assert "(403)" in last and "RAY_AUTH_TOKEN" in last and "stale ~/.ray/auth_token" in last
    # a submission is refused the same way, and nothing runs
    code, _, err = cli("submit", "configs/icpi_chain.yaml", "--set", "agent=random", token="0" * 64)
    assert "(403)" in _one_line_error(code, err, "submit")


def test_unknown_job_id(cli):
    last = _one_line_error(*cli("jobs", "status", "llmrl-nope")[::2], "jobs")
    assert "no job llmrl-nope" in last and "llmrl jobs list" in last


# ---- without a head ----------------------------------------------------------------------------------------
def test_bad_config_fails_before_submitting(capsys):
    # an unreachable address: had it tried to submit, the error would name the address instead
    code = main(["submit", "configs/icpi_chain.yaml", "--set", "train.total_env_steps=-1",
                 "--address", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "train.total_env_steps: -1 is not allowed" in err and "127.0.0.1:9" not in err


def test_unreachable_address_names_it(capsys, monkeypatch):
    port = free_ports(1)[0]
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code = main(["jobs", "list", "--address", f"http://127.0.0.1:{port}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"no Ray dashboard answers at http://127.0.0.1:{port}" in err and "--address" in err


def test_token_lookup_order(tmp_path, monkeypatch):
    for var in TOKEN_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert jobs.read_token() == (None, "no token")
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("home-token\n")
    assert jobs.read_token()[0] == "home-token"
    (tmp_path / "t").write_text("path-token\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "t"))
    assert jobs.read_token()[0] == "path-token"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "env-token")
    assert jobs.read_token() == ("env-token", "RAY_AUTH_TOKEN")
    assert jobs.auth_headers("env-token") == {"Authorization": "Bearer env-token"}
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(jobs.JobsError, match="RAY_AUTH_TOKEN_PATH"):
        jobs.read_token()


def test_address_default_and_form(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert jobs.normalize_address(None) == "http://127.0.0.1:8265"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:8265")
    assert jobs.normalize_address(None) == "http://10.0.0.5:8265"
    with pytest.raises(jobs.JobsError, match="--address http://HEAD:8265"):
        jobs.normalize_address("auto")


def test_entrypoint_and_config_paths(tmp_path):
    plan = jobs.plan_submission(REPO / "configs" / "icpi_chain.yaml", ["agent=random", "name=a b"],
                                python="~/llmrl-venv/bin/python")
    assert plan.entrypoint == ("~/llmrl-venv/bin/python -m cluster.cli run configs/icpi_chain.yaml --set agent=random "
                               "--set 'name=a b' --no-progress")
    assert plan.run_dir == "runs/a b" and plan.submission_id.startswith("llmrl-a-b-")
    assert jobs.entrypoint("configs/x.yaml", []).startswith(f"{sys.executable} -m cluster.cli run configs/x.yaml")
    outside = tmp_path / "c.yaml"
    outside.write_text((REPO / "configs" / "icpi_chain.yaml").read_text())
    with pytest.raises(jobs.JobsError, match="outside the repository"):
        jobs.plan_submission(outside)
    with pytest.raises(jobs.JobsError, match="runs/"):
        jobs.config_in_repo(REPO / "runs" / "x" / "config.yaml")
