"""`llmrl submit` and `llmrl jobs`: runs of `llmrl run` as Ray Jobs on a cluster, through its dashboard's HTTP API.

A job's working directory is a copy of this repository (uploaded as its runtime_env `working_dir`, without
runs/, .venv/, checkpoints and caches), so `configs/...` paths and relative `train.output_dir`s resolve there.
Its entrypoint is `PYTHON -m cluster.cli run CONFIG --set ... --no-progress`; PYTHON is this interpreter by
default, which on a remote cluster must exist on the head: there give `--python '~/llmrl-venv/bin/python'`
(the venv that ray_config.yaml's setup commands create).

Token authentication stays on: the token is looked up the way Ray does (RAY_AUTH_TOKEN > RAY_AUTH_TOKEN_PATH >
~/.ray/auth_token) and sent as `Authorization: Bearer <token>`. Errors are one `JobsError` line naming the fix.
"""
from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import re
import secrets
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
EXCLUDES = ["runs/", ".venv/", "*.pt", "__pycache__", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache",
            "*.egg-info", "build/", "out/"]
"""Not uploaded with a job's working_dir (Ray also skips what .gitignore lists)."""
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class JobsError(Exception):
    """A jobs command that cannot go on; the message is one line saying what to set or give instead."""


# ---- where, and with which token ---------------------------------------------------------------------------
def default_address() -> str:
    """The dashboard address: RAY_ADDRESS if set, else the local default."""
    return os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS


def normalize_address(address: str | None) -> str:
    """An http(s):// dashboard address ('HOST:PORT' gets http://)."""
    address = (address or default_address()).rstrip("/")
    if address == "auto" or address.startswith("ray://"):
        raise JobsError(f"address {address!r} is not a dashboard address; give --address http://HEAD:8265 "
                        f"(or set RAY_ADDRESS to it)")
    return address if "://" in address else f"http://{address}"


def read_token() -> tuple[str | None, str]:
    """(token, where it came from) as Ray looks it up: RAY_AUTH_TOKEN > RAY_AUTH_TOKEN_PATH > ~/.ray/auth_token."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        path = Path(os.environ["RAY_AUTH_TOKEN_PATH"]).expanduser()
        token = path.read_text().strip() if path.is_file() else ""
        if not token:
            raise JobsError(f"RAY_AUTH_TOKEN_PATH={path} is not a file holding a token; point it at the cluster's "
                            f"token file (or unset it)")
        return token, f"RAY_AUTH_TOKEN_PATH={path}"
    default = Path.home() / ".ray" / "auth_token"
    if default.is_file() and default.read_text().strip():
        return default.read_text().strip(), str(default)
    return None, "no token"


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _auth_message(address: str, status: int, source: str) -> str:
    fix = ("set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<token> or RAY_AUTH_TOKEN_PATH=<token file> to the cluster's "
           "token (for a cluster from ray_config.yaml: RAY_AUTH_TOKEN_PATH=~/.ray/llmrl_auth_token)")
    if status == 401:
        return f"the Ray cluster at {address} requires a token and none was sent (401): {fix}"
    return (f"the Ray cluster at {address} refused the token from {source} (403): {fix}; "
            f"a stale ~/.ray/auth_token from an earlier local Ray gives this error")


def _unreachable_message(address: str) -> str:
    return (f"no Ray dashboard answers at {address}: start the cluster (ray up ray_config.yaml, or ray start --head) "
            f"and give its dashboard address with --address http://HEAD:8265 or RAY_ADDRESS")


@contextlib.contextmanager
def _translated(address: str, source: str) -> Iterator[None]:
    """Ray's auth, connection and not-found errors as one-line JobsErrors."""
    import aiohttp
    import requests
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as e:
        raise JobsError(_auth_message(address, 401 if "Authentication required" in e.message else 403,
                                      source)) from None
    except aiohttp.WSServerHandshakeError as e:
        if e.status in (401, 403):
            raise JobsError(_auth_message(address, e.status, source)) from None
        raise
    except (ConnectionError, requests.exceptions.ConnectionError, aiohttp.ClientConnectionError):
        raise JobsError(_unreachable_message(address)) from None
    except RuntimeError as e:
        match = re.search(r"Job (\S+) does not exist", str(e))
        if match:
            raise JobsError(f"no job {match.group(1)} on {address}; `llmrl jobs list` shows the jobs") from None
        raise


class Jobs:
    """The Ray Jobs API of one cluster, with this user's token."""

    def __init__(self, address: str | None = None):
        from ray.job_submission import JobSubmissionClient

        self.address = normalize_address(address)
        token, self.token_source = read_token()
        with self.errors():
            self.client = JobSubmissionClient(self.address, headers=auth_headers(token))

    def errors(self):
        return _translated(self.address, self.token_source)

    def status(self, job_id: str) -> Any:
        """The JobDetails of `job_id` (status, message, times, entrypoint)."""
        with self.errors():
            return self.client.get_job_info(job_id)

    def list(self) -> list[Any]:
        with self.errors():
            return sorted(self.client.list_jobs(), key=lambda j: j.start_time or 0)

    def logs(self, job_id: str) -> str:
        with self.errors():
            return self.client.get_job_logs(job_id)

    def follow(self, job_id: str, out=None) -> str:
        """Stream the job's logs to `out` (stdout) until it ends; its final status."""
        async def tail():
            async for chunk in self.client.tail_job_logs(job_id):
                (out or sys.stdout).write(chunk)
                (out or sys.stdout).flush()

        self.status(job_id)  # a clear error for an unknown id before the websocket
        with self.errors():
            asyncio.run(tail())
        return self.wait(job_id, timeout_s=30.0)

    def wait(self, job_id: str, timeout_s: float = 60.0) -> str:
        """Poll until the job is in a terminal state (or the timeout); its status."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = str(self.status(job_id).status.value)
            if status in TERMINAL or time.monotonic() > deadline:
                return status
            time.sleep(0.5)

    def stop(self, job_id: str) -> bool:
        """Ask the job to stop; False when it had already ended."""
        with self.errors():
            return self.client.stop_job(job_id)

    def submit(self, entrypoint: str, submission_id: str) -> str:
        with self.errors():
            return self.client.submit_job(entrypoint=entrypoint, submission_id=submission_id,
                                          runtime_env={"working_dir": str(REPO_ROOT), "excludes": EXCLUDES})


# ---- llmrl submit ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Submission:
    """What `llmrl submit` sends: the job's id and entrypoint, and where its run directory will be."""

    submission_id: str
    entrypoint: str
    run_dir: str
    """train.output_dir/name, relative to the job's working directory when output_dir is relative."""


def config_in_repo(config_path: str | Path) -> str:
    """The config's path relative to the repository root, which is the job's working directory; an error if
    the config would not be uploaded (outside the repository, or under an excluded path such as runs/)."""
    path = Path(config_path).resolve()
    try:
        relative = path.relative_to(REPO_ROOT)
    except ValueError:
        raise JobsError(f"{config_path} is outside the repository {REPO_ROOT}, which is what a job uploads; copy "
                        f"it under configs/ and submit that") from None
    for part in relative.parts:
        if any(fnmatch.fnmatch(part, p.rstrip("/")) for p in EXCLUDES):
            raise JobsError(f"{config_path} is under {part}/, which is not uploaded with a job; copy it under "
                            f"configs/ and submit that")
    return relative.as_posix()


def python_word(python: str) -> str:
    """The interpreter as a shell word; a leading ~/ stays unquoted, so it expands on the head."""
    if python.startswith("~/"):
        return "~/" + shlex.quote(python[2:])
    return shlex.quote(python)


def entrypoint(config: str, overrides: Sequence[str], python: str | None = None) -> str:
    """`PYTHON -m cluster.cli run CONFIG --set ... --no-progress`, quoted for the shell."""
    words = ["-m", "cluster.cli", "run", config]
    for override in overrides:
        words += ["--set", override]
    return " ".join([python_word(python or sys.executable)] + [shlex.quote(w) for w in words + ["--no-progress"]])


def submission_id(name: str) -> str:
    """`llmrl-<name>-<UTC timestamp>-<4 hex>` (the suffix keeps two submissions in one second apart)."""
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "run"
    return f"llmrl-{clean}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def plan_submission(config_path: str | Path, overrides: Sequence[str] = (), python: str | None = None) -> Submission:
    """Validate the config here (a bad one raises ConfigError: nothing is submitted) and build the job."""
    from cluster.methods import load_config

    config = load_config(config_path, overrides)
    relative = config_in_repo(config_path)
    return Submission(submission_id(config.name), entrypoint(relative, overrides, python),
                      str(Path(config.train.output_dir) / config.name))


def submit(config_path: str | Path, overrides: Sequence[str] = (), address: str | None = None,
           python: str | None = None) -> Submission:
    """Submit `llmrl run CONFIG --set ...` as a Ray Job; the submission."""
    plan = plan_submission(config_path, overrides, python)
    Jobs(address).submit(plan.entrypoint, plan.submission_id)
    return plan


def describe_submission(plan: Submission, address: str) -> str:
    """What `llmrl submit` prints: the job id, the run directory, how to follow it."""
    where = ("" if Path(plan.run_dir).is_absolute() else
             ", relative to the job's working directory: a copy of this repository on the head that Ray may delete "
             "later (give --set train.output_dir=/absolute/path on shared storage to keep it)")
    flag = "" if address == normalize_address(None) else f" --address {address}"
    return (f"submitted job {plan.submission_id} to {address}\n"
            f"  entrypoint: {plan.entrypoint}\n"
            f"  run directory: {plan.run_dir} (or {plan.run_dir}-2, -3... if taken){where}\n"
            f"  follow it: llmrl jobs logs {plan.submission_id} --follow{flag}\n"
            f"  status / stop: llmrl jobs status|stop {plan.submission_id}{flag}")


def describe_jobs(jobs: list[Any]) -> str:
    """`llmrl jobs list`: one line per job, oldest first."""
    if not jobs:
        return "no jobs"
    rows = [(j.submission_id or j.job_id or "-", str(j.status.value),
             time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.start_time / 1000)) if j.start_time else "-",
             j.entrypoint if len(j.entrypoint) <= 80 else j.entrypoint[:77] + "...") for j in jobs]
    widths = [max(len(r[i]) for r in rows + [("ID", "STATUS", "STARTED", "")]) for i in range(3)]
    lines = [f"{'ID':<{widths[0]}}  {'STATUS':<{widths[1]}}  {'STARTED':<{widths[2]}}  ENTRYPOINT"]
    lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in rows]
    return "\n".join(lines)
