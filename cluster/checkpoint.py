"""Training-state checkpoints: atomic save, load, RNG capture, and the run dir's numbered files.

A checkpoint is one `torch.save` of a nested dict (weights and optimizer state dicts, tensors,
RNG states, counters, config as a plain dict). Checkpoints of a run live at
`run_dir/checkpoints/update_{n:06d}.pt`, n being the learner update they were taken after.
"""
from __future__ import annotations

import os
import random
import re
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"update_(\d+)\.pt")


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message names the path and why."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write `state` to `path` atomically; returns `path`.

    The state goes to a temporary file in the same directory, is fsynced, then `os.replace`d over
    `path`: a crash or a serialization error (raised as CheckpointError) leaves any previous
    checkpoint at `path` intact and no temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("xb") as f:
            try:
                torch.save(state, f)
            except Exception as e:
                raise CheckpointError(
                    f"could not serialize the state for checkpoint {path}: {type(e).__name__}: {e}; it must hold "
                    "only tensors, state dicts, numbers, strings, lists, dicts and RNG states (no lambdas, open "
                    "files, Ray handles)"
                ) from e
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, its tensors placed on `map_location`.

    Uses `torch.load(..., weights_only=False)`, which can run arbitrary pickled code: acceptable
    because checkpoints are our own files; never load one from an untrusted source.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; check the run dir or the update number")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(e).__name__}: {e}); it may be truncated or not a "
            "checkpoint: delete it to resume from the previous one"
        ) from e


def rng_state() -> dict[str, Any]:
    """The global RNG states of Python `random`, NumPy, torch CPU and (when available) every CUDA device."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG states captured by `rng_state()`.

    CUDA states are restored for the devices present (none when CUDA is unavailable here).
    """
    missing = [key for key in ("python", "numpy", "torch") if key not in state]
    if missing:
        raise ValueError(f"RNG state lacks {missing}; pass the dict returned by rng_state()")
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        for device, device_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state.cpu(), device)


def checkpoint_path(run_dir: Path, update: int) -> Path:
    """Where the checkpoint taken after learner update `update` lives."""
    if update < 0:
        raise ValueError(f"update must be >= 0, got {update}")
    return Path(run_dir) / CHECKPOINT_DIR / f"update_{update:06d}.pt"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The run's checkpoint with the highest update number, or None when it has none."""
    checkpoints = _numbered_checkpoints(run_dir)
    return checkpoints[-1][1] if checkpoints else None


def prune_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` checkpoints of the run; returns the deleted paths."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1 (the newest checkpoint is never pruned), got {keep}")
    stale = [path for _, path in _numbered_checkpoints(run_dir)[:-keep]]
    for path in stale:
        path.unlink()
    return stale


def _numbered_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(update, path) of the run's checkpoint files, oldest first; temp and unrelated files ignored."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not directory.is_dir():
        return []
    found = [(_NAME.fullmatch(p.name), p) for p in directory.iterdir() if p.is_file()]
    return sorted((int(m.group(1)), p) for m, p in found if m)
