"""`llmrl scale RUN_DIR_OR_JOB --scorers N`: change the scorer-worker count of a running run.

A run with use_ray names its scorer pool actor `llmrl-pool-[<Ray Job id>-]<hex>` in the Ray namespace "llmrl"
and writes RUN_DIR/ray.json ({gcs_address, namespace, actor}) while it runs. Given a run directory, this
process joins that Ray cluster and calls the pool's `set_workers`. Token authentication (on for every cluster
llmrl starts): a process joining an existing cluster sends its token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
~/.ray/auth_token, which the run's `ray.init()` created) only with RAY_AUTH_MODE=token, set here if unset.
Given a Ray Job id (`llmrl submit`), whose run directory is on the cluster's head, it submits a tiny Ray Job
that does the same from inside the cluster, finding the pool by the job id in its name.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

NAMESPACE = "llmrl"
"""Ray namespace of the actors another process looks up by name."""
RAY_FILE = "ray.json"
_AUTH_MODE = "RAY_AUTH_MODE"
_JOB_CONFIG = "RAY_JOB_CONFIG_JSON_ENV_VAR"
"""What Ray's job supervisor hands a job's entrypoint: JSON whose metadata holds the job's submission id."""


class ScaleError(Exception):
    """The run cannot be found or scaled; the message says why and what to do."""


def job_prefix(job_id: str) -> str:
    return f"llmrl-pool-{job_id}-"


def pool_actor_name() -> str:
    """A new scorer pool's actor name: `llmrl-pool-<Ray Job submission id>-<hex>` inside a Ray Job (so that
    `llmrl scale JOB_ID` finds it), else `llmrl-pool-<hex>`; the hex part keeps a restarted run's new pool
    apart from its old one."""
    metadata = json.loads(os.environ.get(_JOB_CONFIG, "{}")).get("metadata") or {}
    job = metadata.get("job_submission_id")
    return (job_prefix(job) if job else "llmrl-pool-") + secrets.token_hex(4)


def write_ray_file(run_dir: Path, actor: str) -> None:
    """RUN_DIR/ray.json: where another process finds this run's scorer pool (Ray is running here)."""
    import ray

    info = {"gcs_address": ray.get_runtime_context().gcs_address, "namespace": NAMESPACE, "actor": actor}
    (Path(run_dir) / RAY_FILE).write_text(json.dumps(info, indent=2) + "\n")


def read_ray_file(run_dir: Path) -> dict[str, str]:
    path = Path(run_dir) / RAY_FILE
    if not path.is_file():
        raise ScaleError(f"{run_dir} has no {RAY_FILE}: it is not a running run with use_ray: true (a run writes it "
                         f"when it starts and removes it when it ends); give a running run's directory or a job id")
    return json.loads(path.read_text())


def use_token_auth() -> None:
    """RAY_AUTH_MODE=token for this process after `import ray`: Ray reads it into its cached config at import,
    which has to be re-read (as Ray's own token set-up does, ray._private.authentication)."""
    from ray._raylet import Config

    os.environ[_AUTH_MODE] = "token"
    Config.initialize("")


def set_scorers(actor: str, scorers: int, address: str | None = None) -> dict[str, Any]:
    """Join Ray (`address`; None: RAY_ADDRESS, as inside a Ray Job), resize the named pool; its stats after."""
    import ray

    ray.init(address=address, namespace=NAMESPACE, configure_logging=False, log_to_driver=False)
    try:
        try:
            pool = ray.get_actor(actor, namespace=NAMESPACE)
        except ValueError:
            raise ScaleError(f"no scorer pool {actor!r} in Ray namespace {NAMESPACE!r}: has the run ended?") from None
        try:
            ray.get(pool.set_workers.remote(scorers))
        except ray.exceptions.RayTaskError as e:
            raise ScaleError(str(e.cause if isinstance(e.cause, ValueError) else e)) from None
        return ray.get(pool.stats.remote())
    finally:
        ray.shutdown()


def scale_run_dir(run_dir: Path, scorers: int, address: str | None = None) -> dict[str, Any]:
    info = read_ray_file(run_dir)
    if _AUTH_MODE not in os.environ:
        use_token_auth()
    try:
        return set_scorers(info["actor"], scorers, address or info["gcs_address"])
    except ConnectionError as e:
        raise ScaleError(f"cannot reach the run's Ray at {info['gcs_address']} ({e}): has the run ended?") from None


def scale_job(job_id: str, scorers: int, address: str | None = None, python: str | None = None) -> str:
    """Resize the pool of the run in Ray Job `job_id` by a small job on the same cluster; that job's output."""
    from cluster.jobs import Jobs, python_word

    jobs = Jobs(address)
    jobs.status(job_id)  # an unknown id fails here, with the jobs client's message
    words = ["-m", "cluster.scale", job_prefix(job_id), str(scorers)]
    entrypoint = " ".join([python_word(python or sys.executable)] + [shlex.quote(w) for w in words])
    scale_id = f"{job_id}-scale-{secrets.token_hex(2)}"
    jobs.submit(entrypoint, scale_id)
    status = jobs.wait(scale_id, timeout_s=600.0)
    logs = jobs.logs(scale_id)
    if status != "SUCCEEDED":
        raise ScaleError(f"the scale job {scale_id} ended {status}:\n{logs}")
    return logs


def described(what: str, stats: dict[str, Any]) -> str:
    return (f"llmrl scale: {what} now has {stats['workers']} scorer workers (requests in {stats['requests_in']}, "
            f"answers out {stats['answers_out']})")


def scale_command(args) -> int:
    """The `llmrl scale` handler."""
    from cluster.cli import UsageError
    from cluster.jobs import JobsError

    if args.scorers < 1:
        raise UsageError(f"--scorers {args.scorers}: give at least 1")
    try:
        if Path(args.target).is_dir():
            print(described(args.target, scale_run_dir(Path(args.target), args.scorers, args.address)))
        else:
            print(scale_job(args.target, args.scorers, args.address, args.python), end="")
    except (ScaleError, JobsError) as e:
        raise UsageError(str(e)) from None
    return 0


def main(argv: list[str]) -> int:
    """Inside the cluster (a scale job's entrypoint): PREFIX SCORERS, the pool being the live actor so named."""
    import ray

    prefix, scorers = argv
    ray.init(namespace=NAMESPACE, configure_logging=False, log_to_driver=False)
    names = [n for n in ray.util.list_named_actors() if n.startswith(prefix)]
    ray.shutdown()
    if len(names) != 1:
        raise ScaleError(f"{len(names)} scorer pools named {prefix}* in Ray namespace {NAMESPACE!r} (want one): "
                         "is the job running, with use_ray: true?")
    print(described(names[0], set_scorers(names[0], int(scorers))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
