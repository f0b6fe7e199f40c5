"""Offline datasets of text-env transitions (written by `llmrl collect`, read by CQL-Prior). No pickle.

Format `llmrl-offline-transitions`, version 1: a directory holding
- `meta.json`: {"format": "llmrl-offline-transitions", "version": 1, "transitions_file": "transitions.jsonl",
  "sha256": hex digest of transitions.jsonl, "transitions": N, "episodes": E, "env": {"id", "kwargs"},
  "behaviour", "seed", "has_proposals" (every transition carries LLM proposals), "successes", "mean_return",
  "proposals_generated", "proposals_unmatched", "created" (UTC, ISO 8601), "config" (the collect config)};
- `transitions.jsonl`: one JSON object per line (UTF-8, each line ending in a newline), in episode order:
  {"episode": int, "step": int, "mission": str, "observation": str, "action": str, "reward": number,
   "next_observation": str, "terminated": bool, "truncated": bool, "admissible": [str, ...],
   "next_admissible": [str, ...], "proposals": [str, ...] | null, "next_proposals": [str, ...] | null}.
  `observation` is the env's descriptions joined by spaces; the Q-network reads "MISSION. OBSERVATION"
  (DQN-Prior's state text) and the LLM the proposal prompt of (mission, observation, admissible).
  `action` is one of `admissible`. `proposals` are the LLM's k proposals at s, matched to admissible
  commands, duplicates kept (their counts are the prior); `next_proposals` those at s' ([] when
  terminated); both null when no LLM was asked.
The directory is written under a temporary name and renamed when complete. Reading checks the format,
the version, the checksum and the count, and validates every field of every line; an error names the
file, the line and the fix.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from learners.dqn_prior.algorithm import state_text
from learners.dqn_prior.proposals import proposal_prompt
from learners.state_io import StateFormatError

FORMAT, VERSION = "llmrl-offline-transitions", 1
META, TRANSITIONS = "meta.json", "transitions.jsonl"
FIX = "re-create the dataset with `llmrl collect CONFIG` (meta.json's `config` holds the collect config used)"


class DatasetError(StateFormatError):
    """A dataset is missing, truncated, corrupt or of another format; the message names the file and the fix."""


@dataclass(frozen=True)
class Record:
    """One transition of a dataset (see the module docstring); validates its fields on creation."""

    episode: int
    step: int
    mission: str
    observation: str
    action: str
    reward: float
    next_observation: str
    terminated: bool
    truncated: bool
    admissible: tuple[str, ...]
    next_admissible: tuple[str, ...]
    proposals: tuple[str, ...] | None = None
    next_proposals: tuple[str, ...] | None = None

    def __post_init__(self):
        for name in ("episode", "step"):
            _check(type(getattr(self, name)) is int and getattr(self, name) >= 0, name, "an integer >= 0")
        for name in ("mission", "observation", "action", "next_observation"):
            _check(isinstance(getattr(self, name), str), name, "a string")
        _check(type(self.reward) in (int, float) and math.isfinite(self.reward), "reward", "a finite number")
        for name in ("terminated", "truncated"):
            _check(isinstance(getattr(self, name), bool), name, "true or false")
        for name in ("admissible", "next_admissible", "proposals", "next_proposals"):
            value = getattr(self, name)
            _check(value is None and name.endswith("proposals") or isinstance(value, tuple)
                   and all(isinstance(a, str) for a in value), name, "a list of strings")
        _check(bool(self.admissible), "admissible", "a non-empty list")
        _check(self.action in self.admissible, "action", "one of `admissible`")
        _check((self.proposals is None) == (self.next_proposals is None), "next_proposals",
               "null exactly when `proposals` is null")
        if self.proposals is not None:
            _check(bool(self.proposals) and set(self.proposals) <= set(self.admissible), "proposals",
                   "a non-empty list of commands from `admissible`")
            _check(set(self.next_proposals) <= set(self.next_admissible)
                   and (self.terminated or bool(self.next_proposals)), "next_proposals",
                   "commands from `next_admissible`, non-empty unless terminated")

    @property
    def state(self) -> str:
        """The text the Q-network reads for s (DQN-Prior's state text)."""
        return state_text({"mission": self.mission, "descriptions": [self.observation]})

    @property
    def next_state(self) -> str:
        return state_text({"mission": self.mission, "descriptions": [self.next_observation]})

    @property
    def prompt(self) -> str:
        """The LLM's proposal prompt at s."""
        return proposal_prompt(self.mission, self.observation, self.admissible)

    @property
    def next_prompt(self) -> str:
        return proposal_prompt(self.mission, self.next_observation, self.next_admissible)

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: Any) -> "Record":
        _check(isinstance(data, dict), "line", "a JSON object")
        names = [f.name for f in fields(cls)]
        missing, unknown = [n for n in names if n not in data], sorted(set(data) - set(names))
        _check(not missing and not unknown, "keys", f"exactly {', '.join(names)} "
               f"(missing: {missing or 'none'}, unknown: {unknown or 'none'})")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _check(ok: bool, field: str, allowed: str) -> None:
    if not ok:
        raise ValueError(f"`{field}` must be {allowed}")


def observation(info: dict) -> str:
    """A text env's observation as a dataset stores it: its descriptions joined by spaces."""
    return " ".join(info["descriptions"])


class DatasetWriter:
    """Writes a dataset directory: `add` records, then `commit(meta)`; a temporary directory until then.
    Used as a context manager, an exception (or no commit) removes the temporary directory."""

    def __init__(self, path: str | Path, overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise DatasetError(f"{self.path} already exists; choose another output or set overwrite: true")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        self.tmp.mkdir()
        self._file = (self.tmp / TRANSITIONS).open("wb")
        self._hash = hashlib.sha256()
        self.count = 0

    def add(self, record: Record) -> None:
        line = (json.dumps(record.to_json(), ensure_ascii=False) + "\n").encode()
        self._file.write(line)
        self._hash.update(line)
        self.count += 1

    def commit(self, meta: dict[str, Any]) -> Path:
        """Write meta.json (format, version, checksum and count added) and move the directory into place."""
        self._file.close()
        meta = {"format": FORMAT, "version": VERSION, "transitions_file": TRANSITIONS,
                "sha256": self._hash.hexdigest(), "transitions": self.count, **meta}
        (self.tmp / META).write_text(json.dumps(meta, indent=2))
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc) -> None:
        if self.tmp.exists():
            self.abort()


def read_meta(path: str | Path) -> dict[str, Any]:
    """A dataset's meta.json, its format and version checked."""
    meta_path = Path(path) / META
    if not meta_path.is_file():
        hint = "" if Path(path).is_dir() else " (no such directory)"
        raise DatasetError(f"{meta_path} is missing{hint}: {path} is not a complete dataset; {FIX}")
    try:
        meta = json.loads(meta_path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise DatasetError(f"{meta_path} is not valid JSON ({e}); {FIX}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DatasetError(f"{meta_path} is not an llmrl offline dataset (format {FORMAT!r} expected); {FIX}")
    if meta.get("version") != VERSION:
        raise DatasetError(f"{meta_path} has format version {meta.get('version')!r}; this llmrl reads version "
                           f"{VERSION}: {FIX} with this llmrl")
    for key, kind in (("sha256", str), ("transitions", int), ("env", dict)):
        if not isinstance(meta.get(key), kind):
            raise DatasetError(f"{meta_path}: `{key}` is missing or not a {kind.__name__}; {FIX}")
    return meta


def iter_records(path: str | Path) -> Iterator[Record]:
    """The dataset's records, in order, after its checksum and count were verified."""
    verify(path)
    yield from _parse(Path(path) / TRANSITIONS)


def load_dataset(path: str | Path) -> tuple[dict[str, Any], list[Record]]:
    """(meta, every record) of a dataset, verified."""
    return read_meta(path), list(iter_records(path))


def verify(path: str | Path) -> dict[str, Any]:
    """Check meta.json and the transitions file's checksum and count; on a mismatch, name the first bad line."""
    meta = read_meta(path)
    file = Path(path) / TRANSITIONS
    if not file.is_file():
        raise DatasetError(f"{file} is missing: {path} is not a complete dataset; {FIX}")
    digest = hashlib.sha256()
    with file.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != meta["sha256"]:
        count = sum(1 for _ in _parse(file))  # raises at the first malformed line, if any
        if count != meta["transitions"]:
            raise DatasetError(f"{file} holds {count} transitions, {META} says {meta['transitions']}: it is "
                               f"truncated or was appended to; {FIX}")
        raise DatasetError(f"{file}: sha256 {digest.hexdigest()} differs from {META}'s {meta['sha256']}: the file "
                           f"was modified or corrupted (every line still parses, so a value changed); {FIX}")
    return meta


def _parse(file: Path) -> Iterator[Record]:
    with file.open("rb") as f:
        for number, raw in enumerate(f, 1):
            where = f"{file}, line {number}"
            if not raw.endswith(b"\n"):
                raise DatasetError(f"{where} is incomplete (no newline at its end): the file is truncated; {FIX}")
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as e:
                raise DatasetError(f"{where} is not valid JSON ({e}): the file is corrupt or truncated; "
                                   f"{FIX}") from None
            try:
                record = Record.from_json(data)
            except (ValueError, TypeError) as e:
                raise DatasetError(f"{where}: {e}; {FIX}") from None
            yield record
