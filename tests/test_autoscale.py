"""The autoscaling decision, by hand: grow on a sustained queue, shrink when idle, stay within bounds."""
from __future__ import annotations

import pytest

from actors.autoscale import Autoscaler, Observation, held_for, target_workers, workers_that_fit
from actors.pool_config import PoolConfig
from cluster.config import ConfigError

AUTO = PoolConfig(num_workers=2, min_workers=1, max_workers=3, scale_up_queue=1.0, scale_up_after_s=2.0,
                  scale_down_idle_s=3.0, check_interval_s=0.5)


def window(workers: int, in_flight: list[int], start: float = 0.0, every: float = 1.0) -> list[Observation]:
    return [Observation(start + i * every, workers, n) for i, n in enumerate(in_flight)]


def test_queued_counts_shards_behind_busy_workers():
    assert Observation(0.0, 2, 5).queued == 3
    assert Observation(0.0, 2, 1).queued == 0


def test_held_for_measures_the_unbroken_tail():
    obs = window(2, [4, 0, 4, 4, 4])  # times 0..4
    assert held_for(obs, 4.0, lambda o: o.in_flight == 4) == 2.0
    assert held_for(obs, 4.0, lambda o: o.in_flight == 0) == 0.0
    assert held_for([], 4.0, lambda o: True) == 0.0


def test_grows_by_one_after_a_queue_lasting_scale_up_after_s():
    assert target_workers(window(2, [4, 4, 4]), 2.0, 2, AUTO) == 3  # 2 queued per 2 workers for 2 s
    assert target_workers(window(2, [4, 4]), 1.0, 2, AUTO) == 2  # not long enough yet
    assert target_workers(window(2, [4, 3, 4]), 2.0, 2, AUTO) == 2  # a short queue (1 per 2 workers) broke it
    assert target_workers(window(3, [9, 9, 9]), 2.0, 3, AUTO) == 3  # at max_workers


def test_shrinks_by_one_after_idling_scale_down_idle_s():
    assert target_workers(window(2, [0, 0, 0, 0]), 3.0, 2, AUTO) == 1
    assert target_workers(window(2, [0, 0, 0]), 2.0, 2, AUTO) == 2
    assert target_workers(window(2, [0, 1, 0, 0]), 3.0, 2, AUTO) == 2  # busy 2 s ago: one request resets it
    assert target_workers(window(1, [0, 0, 0, 0]), 3.0, 1, AUTO) == 1  # at min_workers


def test_a_count_out_of_bounds_is_brought_back_and_fixed_pools_never_move():
    assert target_workers([], 0.0, 5, AUTO) == 3
    assert target_workers([], 0.0, 0, AUTO) == 1
    fixed = PoolConfig(num_workers=2)
    assert target_workers(window(2, [9] * 10), 9.0, 2, fixed) == 2
    assert target_workers(window(2, [0] * 10), 9.0, 2, fixed) == 2


def test_workers_that_fit_the_free_resources():
    assert workers_that_fit({"CPU": 1.5}, {"CPU": 0.5, "GPU": 0.0}) == 3
    assert workers_that_fit({"CPU": 4.0, "GPU": 1.0}, {"CPU": 1.0, "GPU": 0.5}) == 2
    assert workers_that_fit({"CPU": 4.0}, {"CPU": 1.0, "GPU": 1.0}) == 0
    assert workers_that_fit({"CPU": 0.3}, {"CPU": 0.1}) == 3  # float rounding does not lose one


def test_the_autoscaler_applies_decisions_within_the_room_and_restarts_its_window():
    clock, resized, state = [0.0], [], {"workers": 2, "in_flight": 6, "room": 0}

    def sample():
        return Observation(clock[0], state["workers"], state["in_flight"])

    def resize(n):
        resized.append(n)
        state["workers"] = n

    scaler = Autoscaler(AUTO, sample, resize, lambda: state["room"], lambda: clock[0])
    for t in (0.0, 1.0, 2.0):
        clock[0] = t
        scaler.check()
    assert resized == []  # wanted 3, but the cluster had no room
    state["room"] = 1
    clock[0] = 3.0
    assert scaler.check() == 3 and resized == [3] and scaler.window == []
    state["in_flight"] = 0
    for t in (4.0, 5.0, 6.0, 7.0):
        clock[0] = t
        scaler.check()
    assert resized == [3, 2]


def test_autoscaling_bounds_are_validated():
    with pytest.raises(ValueError, match="set both min_workers and max_workers"):
        PoolConfig(min_workers=1)
    with pytest.raises(ValueError, match=r"1 <= min_workers \(2\) <= num_workers <= max_workers \(3\)"):
        PoolConfig(num_workers=1, min_workers=2, max_workers=3)
    with pytest.raises(ValueError, match="scale_up_queue"):
        PoolConfig(scale_up_queue=0)


def test_a_yaml_pool_section_with_bounds_loads(tmp_path):
    from cluster.config import from_dict

    pool = from_dict(PoolConfig, {"num_workers": 1, "min_workers": 1, "max_workers": 2, "scale_up_after_s": 3})
    assert pool.autoscaled and pool.max_workers == 2
    with pytest.raises(ConfigError, match="min_workers"):
        from_dict(PoolConfig, {"min_workers": 1})
