"""The scorer pool's autoscaling: the decision as pure functions over a window of load observations, and
the small thread that applies it.

The pool (actors/scorer_pool.py) runs an `Autoscaler`: every `check_interval_s` it samples the load, keeps
the recent samples and asks `target_workers` for the worker count to move to; it grows no further than the
cluster's free resources hold (`workers_that_fit`) and clears the window after every change, so that each
step up or down needs its own full period of evidence.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from actors.pool_config import PoolConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observation:
    """The pool's load at one instant."""

    time: float
    """Seconds (a monotonic clock)."""
    workers: int
    """Workers serving (draining ones left out)."""
    in_flight: int
    """Shards sent to workers and not yet answered."""

    @property
    def queued(self) -> int:
        """Shards waiting behind another shard on a busy worker (a worker serves one shard at a time)."""
        return max(0, self.in_flight - self.workers)


def held_for(window: Sequence[Observation], now: float, condition: Callable[[Observation], bool]) -> float:
    """Seconds `condition` has held without a break up to the latest observation (0 when it fails there)."""
    start = None
    for obs in reversed(window):
        if not condition(obs):
            break
        start = obs.time
    return 0.0 if start is None else now - start


def target_workers(window: Sequence[Observation], now: float, workers: int, config: PoolConfig) -> int:
    """The worker count to move to: one more when the queue per worker stayed at or over `scale_up_queue`
    for `scale_up_after_s`; one fewer when nothing was in flight for `scale_down_idle_s`; always within
    [min_workers, max_workers]; `workers` when autoscaling is off (min_workers None)."""
    if config.min_workers is None or config.max_workers is None:
        return workers
    if workers < config.min_workers or workers > config.max_workers:
        return min(max(workers, config.min_workers), config.max_workers)
    if held_for(window, now, lambda o: o.queued >= config.scale_up_queue * max(o.workers, 1)) \
            >= config.scale_up_after_s:
        return min(workers + 1, config.max_workers)
    if held_for(window, now, lambda o: o.in_flight == 0) >= config.scale_down_idle_s:
        return max(workers - 1, config.min_workers)
    return workers


def workers_that_fit(available: Mapping[str, float], per_worker: Mapping[str, float]) -> int:
    """How many more workers of `per_worker` resources the free `available` resources hold."""
    fits = [math.floor(available.get(name, 0.0) / amount + 1e-9) for name, amount in per_worker.items() if amount > 0]
    return max(0, min(fits)) if fits else 0


class Autoscaler:
    """A daemon thread that samples a pool's load every `check_interval_s` and resizes it as `target_workers`
    says, by at most what `room()` (workers the free resources hold) allows upwards."""

    def __init__(self, config, sample: Callable[[], Observation], resize: Callable[[int], None],
                 room: Callable[[], int], clock: Callable[[], float]):
        self.config = config
        self._sample, self._resize, self._room, self._clock = sample, resize, room, clock
        self.window: list[Observation] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scorer-pool-autoscaler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.config.check_interval_s + 1.0)

    def check(self) -> int:
        """Sample once and apply the decision; returns the target applied."""
        obs = self._sample()
        horizon = max(self.config.scale_up_after_s, self.config.scale_down_idle_s) + 2 * self.config.check_interval_s
        self.window = [o for o in self.window if o.time >= obs.time - horizon] + [obs]
        target = target_workers(self.window, obs.time, obs.workers, self.config)
        if target > obs.workers:
            target = obs.workers + min(target - obs.workers, self._room())
        if target != obs.workers:
            self._resize(target)
            self.window = []  # each further step needs its own evidence
        return target

    def _loop(self) -> None:
        while not self._stop.wait(self.config.check_interval_s):
            try:
                self.check()
            except Exception:  # a failed resize (no room after all, a worker that failed to start): retry later
                log.exception("scorer pool autoscaling check failed")
