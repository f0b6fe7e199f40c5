"""Counts lost and duplicated transitions from the step ids rollouts carry.

Each env of each runner numbers its steps 0, 1, 2, ... (EnvRunner's per-env step counter); a rollout
covers steps [start, start + count) of each of its envs. The ledger expects every (runner, env) stream
to arrive contiguously: a rollout that starts past the next expected step leaves a gap (lost
transitions), one that starts before it repeats steps already received (duplicated transitions).
Pure bookkeeping, JSON-able state (checkpointed with the learner).
"""
from __future__ import annotations

from typing import Any


class SequenceLedger:
    """Next expected step per (runner, env) and the cumulative lost / duplicated counts."""

    def __init__(self, state: dict[str, Any] | None = None):
        state = state or {}
        self.expected: dict[tuple[int, int], int] = {
            (int(r), int(e)): int(n) for r, e, n in state.get("expected", [])}
        self.lost = int(state.get("lost", 0))
        self.duplicated = int(state.get("duplicated", 0))

    def record(self, runner: int, env: int, start: int, count: int) -> None:
        """Steps [start, start + count) of env `env` of runner `runner` arrived."""
        if count < 0 or start < 0:
            raise ValueError(f"a step range needs start >= 0 and count >= 0, got start={start}, count={count}")
        key = (runner, env)
        expected = self.expected.get(key, 0)
        stop = start + count
        if start > expected:
            self.lost += start - expected
        self.duplicated += max(0, min(stop, expected) - start)
        self.expected[key] = max(expected, stop)

    def state(self) -> dict[str, Any]:
        """JSON-able state; SequenceLedger(state) continues from it."""
        return {"expected": [[r, e, n] for (r, e), n in sorted(self.expected.items())],
                "lost": self.lost, "duplicated": self.duplicated}
