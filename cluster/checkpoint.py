"""A run's checkpoints: numbered directories written atomically, the newest found, old ones pruned.

A checkpoint is a directory `run_dir/checkpoints/checkpoint_{n:06d}/`, n being the algorithm
iteration it was taken after. What goes inside is the algorithm's (`save(directory)`), written with
`learners.state_io` (safetensors + JSON, never pickle). The directory is first written under a
temporary name and renamed when complete, so a crash mid-save leaves the previous checkpoints intact.
"""
from __future__ import annotations

import os
import random
import re
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"checkpoint_(\d+)")
_LEGACY = re.compile(r"update_(\d+)\.pt")


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message names the path and why."""


def checkpoint_path(run_dir: Path, iteration: int) -> Path:
    """Where the checkpoint taken after `iteration` lives."""
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration}")
    return Path(run_dir) / CHECKPOINT_DIR / f"checkpoint_{iteration:06d}"


def write_checkpoint(run_dir: Path, iteration: int, save: Callable[[Path], None]) -> Path:
    """`save(directory)` into a temporary directory, renamed to `checkpoint_path(run_dir, iteration)` once
    complete (replacing an older checkpoint of the same iteration); returns the final path."""
    final = checkpoint_path(run_dir, iteration)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.mkdir()
        save(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The run's checkpoint with the highest iteration, or None when it has none.

    A run directory holding only checkpoints of the old pickled format (`update_N.pt`) is refused."""
    checkpoints = _numbered(run_dir)
    if checkpoints:
        return checkpoints[-1][1]
    directory = Path(run_dir) / CHECKPOINT_DIR
    legacy = sorted(p.name for p in directory.iterdir() if _LEGACY.fullmatch(p.name)) if directory.is_dir() else []
    if legacy:
        raise CheckpointError(
            f"{directory} holds only {legacy[-1]}-style checkpoints, written by an older llmrl with torch.save "
            "(pickle), which llmrl no longer loads because unpickling can run code; start the run again")
    return None


def prune_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` checkpoints of the run; returns the deleted paths."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1 (the newest checkpoint is never pruned), got {keep}")
    stale = [path for _, path in _numbered(run_dir)[:-keep]]
    for path in stale:
        shutil.rmtree(path)
    return stale


def iteration_of(checkpoint: Path) -> int:
    """The iteration a checkpoint directory was taken after."""
    match = _NAME.fullmatch(Path(checkpoint).name)
    if match is None:
        raise CheckpointError(f"{checkpoint} is not a checkpoint directory (checkpoint_NNNNNN)")
    return int(match.group(1))


def _numbered(run_dir: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of the run's checkpoint directories, oldest first; temporary ones ignored."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not directory.is_dir():
        return []
    found = [(_NAME.fullmatch(p.name), p) for p in directory.iterdir() if p.is_dir()]
    return sorted((int(m.group(1)), p) for m, p in found if m)


def rng_state() -> dict[str, Any]:
    """The global RNG states of Python `random`, NumPy, torch CPU and (when available) every CUDA device."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG states captured by `rng_state()` (after a round trip through `learners.state_io`).

    CUDA states are restored for the devices present (none when CUDA is unavailable here).
    """
    missing = [key for key in ("python", "numpy", "torch") if key not in state]
    if missing:
        raise ValueError(f"RNG state lacks {missing}; pass the dict returned by rng_state()")
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        for device, device_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state.cpu(), device)
