"""Text Overcooked (spec: shared/specs/overcooked_text.md): map, primitive ticks, macros, text, rewards, optima."""
from __future__ import annotations

from dataclasses import replace

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from envs.overcooked import OvercookedConfig, OvercookedText, Rewards, Solver
from envs.overcooked.kitchen import (
    DOWN, HAND, LEFT, PLATE, STAY, TOMATO_LETTUCE_SALAD as T3, TOMATO_SALAD as T0, UP, Food, State, access,
    initial_state, tick,
)
from envs.overcooked.macro import macro_names, run_macro
from envs.overcooked.text import actions, describe, observation_vector

ID0, ID3 = "llmrl/Overcooked-TomatoSalad-v0", "llmrl/Overcooked-TomatoLettuceSalad-v0"
FINAL0 = "To serve the dish of a bowl only containing chopped tomato, you should first"
FINAL3 = "To serve the dish of a bowl only containing chopped tomato and lettuce, you should first"
SEQ_A = ["pick up the tomato", "put the tomato on the cutting board", "chop the tomato", "take the bowl",
         "put the tomato in the bowl", "serve the dish"]
SEQ_B = SEQ_A[:3] + ["pick up the tomato", "take the bowl", "serve the dish"]
SEQ_3 = ["pick up the tomato", "put the tomato on the first cutting board", "chop the tomato", "pick up the lettuce",
         "put the lettuce on the second cutting board", "chop the lettuce", "take the empty bowl",
         "put the tomato in the bowl", "put the lettuce in the bowl", "serve the dish"]
LOOP = ["pick up the tomato", "put the tomato on the cutting board", "chop the tomato", "pick up the tomato",
        "serve the dish"]
DEFAULT3 = ["pick up the tomato", "pick up the lettuce", "pick up the onion", "take the empty bowl",
            "walk to the first cutting board", "walk to the second cutting board", "serve nothing", "chop nothing"]
R = Rewards()


def play(env, moves):
    """Steps (obs, reward, terminated, truncated, info) of `moves` (strings or indices)."""
    return [env.step(m) for m in moves]


def state(task, agent, plate, **foods):
    """A kitchen state: foods given as (where, chops), the others at their start."""
    start = initial_state(task)
    return State(agent, tuple(Food(f.name, *foods.get(f.name, (f.where, 0))) for f in start.foods), plate)


# ---- map and primitive ticks -----------------------------------------------------------------------------
def test_map_access_cells_and_macros():
    cells = {(0, 5): (1, 5), (1, 6): (1, 5), (2, 6): (2, 5), (6, 5): (5, 5), (1, 0): (1, 1), (2, 0): (2, 1),
             (3, 0): (3, 1)}
    assert {c: access(c) for c in cells} == cells
    assert macro_names(T0) == ("get tomato", "get plate 1", "go to knife 1", "deliver", "chop")
    assert macro_names(T3) == ("get tomato", "get lettuce", "get onion", "get plate 1", "go to knife 1",
                               "go to knife 2", "deliver", "chop")
    assert initial_state(T3) == State((1, 4), (Food("tomato", (0, 5)), Food("lettuce", (1, 6)),
                                               Food("onion", (2, 6))), (6, 5))


def test_moving_bumping_and_picking_up():
    s = initial_state(T0)
    assert tick(T0, R, s, DOWN) == (replace(s, agent=(2, 4)), -0.001, False)
    assert tick(T0, R, s, UP) == (s, -0.001, False)  # plain counter, nothing held: nothing
    assert tick(T0, R, s, STAY) == (s, -0.001, False)
    s = replace(s, agent=(1, 5))
    held, _, _ = tick(T0, R, s, UP)
    assert held.food("tomato").where == HAND and held.held() == held.food("tomato")
    plate = tick(T0, R, replace(s, agent=(5, 5)), DOWN)[0]
    assert plate.plate == HAND and plate.plate_pos() == (5, 5)


def test_chopping_pays_the_subtask_on_the_third_chop_and_needs_empty_hands():
    s = state(T3, (1, 1), (6, 5), tomato=((1, 0), 0))
    rewards = []
    for _ in range(3):
        s, r, _ = tick(T3, R, s, LEFT)
        rewards.append(r)
    assert s.food("tomato") == Food("tomato", (1, 0), 3) and rewards == [-0.001, -0.001, pytest.approx(0.199)]
    assert tick(T3, R, s, LEFT)[0].held() == Food("tomato", HAND, 3)  # chopped on a board: picked up
    onion = state(T3, (2, 1), (6, 5), onion=((2, 0), 2))
    assert tick(T3, R, onion, LEFT)[1:] == (-0.001, False)  # onion is not in "lettuce-tomato salad"
    busy = state(T3, (1, 1), HAND, tomato=((1, 0), 0))
    assert tick(T3, R, busy, LEFT)[0] == busy


def test_plating_on_boards_and_counters():
    bowl_on_board = state(T3, (1, 1), (1, 0), lettuce=(HAND, 3))
    s = tick(T3, R, bowl_on_board, LEFT)[0]  # the agent takes the bowl and the lettuce goes in
    assert s.plate == HAND and s.food("lettuce").where == PLATE and s.pos(s.food("lettuce")) == (1, 1)
    food_on_board = state(T3, (1, 1), HAND, tomato=((1, 0), 3))
    s = tick(T3, R, food_on_board, LEFT)[0]
    assert s.food("tomato").where == PLATE and s.plate == HAND
    unchopped = state(T3, (1, 1), HAND, tomato=((1, 0), 0))
    assert tick(T3, R, unchopped, LEFT)[0] == unchopped
    on_counter = state(T0, (5, 5), (6, 5), tomato=(HAND, 3))
    s = tick(T0, R, on_counter, DOWN)[0]
    assert s.plate == (6, 5) and s.food("tomato").where == PLATE
    assert tick(T0, R, s, DOWN)[0].plate == HAND
    put = tick(T3, R, state(T3, (2, 1), HAND), LEFT)[0]
    assert put.plate == (2, 0)


def test_correct_and_wrong_deliveries():
    dish = state(T3, (3, 1), HAND, tomato=(PLATE, 3), lettuce=(PLATE, 3))
    s, r, done = tick(T3, R, dish, LEFT)
    assert done and r == pytest.approx(0.999) and s.plate == (3, 0) and s.pos(s.food("tomato")) == (3, 0)
    start = replace(initial_state(T3), agent=(3, 1))
    wrong = {  # what is delivered -> the kitchen after: delivered foods and bowl back at their start, unchopped
        "tomato salad": (state(T3, (3, 1), HAND, tomato=(PLATE, 3)), start),
        "onion salad": (state(T3, (3, 1), HAND, onion=(PLATE, 3)), start),
        "empty bowl": (state(T3, (3, 1), HAND), start),
        "chopped lettuce": (state(T3, (3, 1), (1, 0), lettuce=(HAND, 3)), replace(start, plate=(1, 0))),
        "unchopped tomato": (state(T3, (3, 1), (6, 5), tomato=(HAND, 0)), start),
        "lettuce, tomato kept": (state(T3, (3, 1), HAND, lettuce=(PLATE, 3), tomato=((1, 0), 3)),
                                 state(T3, (3, 1), (6, 5), tomato=((1, 0), 3))),
    }
    for name, (before, after) in wrong.items():
        assert tick(T3, R, before, LEFT) == (after, pytest.approx(-0.101), False), name
    assert tick(T3, R, state(T3, (3, 1), (6, 5)), LEFT)[1] == -0.001  # empty-handed: nothing


# ---- macros -------------------------------------------------------------------------------------------------
def ticks(task, s, macro):
    return len(run_macro(task, R, s, macro).rewards)


def test_macro_tick_counts_of_impossible_and_edge_cases():
    s0 = initial_state(T3)
    assert [ticks(T3, s0, m) for m in ("chop", "deliver", "go to knife 1", "get plate 1")] == [1, 5, 3, 6]
    assert ticks(T3, replace(s0, agent=(3, 1)), "deliver") == 1  # empty-handed, d = 0
    held = state(T3, (1, 5), (6, 5), tomato=(HAND, 0))
    assert ticks(T3, held, "get tomato") == 1 and ticks(T3, held, "get plate 1") == 5  # d + 1: stay on arrival
    assert run_macro(T3, R, held, "chop").state == held
    on_board = state(T3, (5, 5), (6, 5), tomato=((1, 0), 0))
    assert ticks(T3, on_board, "get tomato") == 8 and run_macro(T3, R, on_board, "get tomato").state.held() is None
    busy = state(T3, (1, 1), (6, 5), tomato=((1, 0), 0), lettuce=(HAND, 0))
    result = run_macro(T3, R, busy, "chop")
    assert len(result.rewards) == 3 and result.state == busy  # holding something: 3 no-op ticks
    # bowl with a chopped food on a board: get plate while holding a chopped food takes it in one interaction
    carry = state(T3, (5, 5), (1, 0), tomato=(PLATE, 3), lettuce=(HAND, 3))
    result = run_macro(T3, R, carry, "get plate 1")
    assert len(result.rewards) == 9 and result.state.plate == HAND and len(result.state.in_plate()) == 2


def test_get_food_in_the_bowl_walks_until_the_bowl_is_in_view():
    near = state(T3, (3, 2), (1, 0), tomato=(PLATE, 3))
    assert run_macro(T3, R, near, "get tomato").state == near and ticks(T3, near, "get tomato") == 1
    far = state(T3, (5, 5), (1, 0), tomato=(PLATE, 3))
    result = run_macro(T3, R, far, "get tomato")  # left x4, up x2 (ties: right, down, left, up), then stay
    assert len(result.rewards) == 7 and result.state.agent == (3, 1)


# ---- text ---------------------------------------------------------------------------------------------------
def test_reset_text_vector_and_interface():
    env = OvercookedText()
    obs, info = env.reset(seed=0)
    assert obs == ("There is a fixed cutting board in the room. You notice a tomato on the table. "
                   "Currently you don't have anything in hand. " + FINAL0)
    assert info["vector"] == (0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 4, 1, 0, 0, 0, 0, 0, 0)
    assert info["actions"] == ["pick up the tomato", "take the bowl", "walk to the cutting board", "serve nothing",
                               "chop nothing"]
    assert info["mission"] == "serve the dish of a bowl only containing chopped tomato"
    assert info["descriptions"] == ["There is a fixed cutting board in the room.", "You notice a tomato on the table.",
                                    "Currently you don't have anything in hand."]
    assert " ".join(info["descriptions"]) + " " + FINAL0 == obs and not info["success"]
    with pytest.raises(ValueError, match="'pick up the tomato'.*'chop nothing'"):
        env.step("chop the tomato")
    for bad in (5, -1, True):
        with pytest.raises(ValueError):
            env.step(bad)
    obs, *_, info = env.step(0)
    assert obs == ("There is a fixed cutting board in the room. Currently you are carrying an unchopped tomato in "
                   "hand. " + FINAL0)  # worked example 4
    assert info["actions"] == ["pick up the tomato", "take the bowl", "put the tomato on the cutting board",
                               "serve the dish", "chop nothing"]
    obs3, info3 = OvercookedText(task="lettuce-tomato salad").reset()
    assert info3["descriptions"][1] == "You notice a tomato, a lettuce and an onion on the different tables."
    assert info3["actions"] == DEFAULT3 and obs3.endswith(FINAL3)


def test_worked_examples_2_and_3_of_the_tomato_lettuce_salad():
    env = OvercookedText(task="lettuce-tomato salad")
    env.reset()
    obs, *_, info = play(env, SEQ_3[:3])[-1]
    assert info["vector"] == (1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 3, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0)
    assert obs == ("There are two fixed cutting boards in the room. A chopped tomato is on the first cutting board. "
                   "Currently you are standing in front of the first cutting board without anything in hand. "
                   + FINAL3)
    assert info["actions"] == DEFAULT3[:7] + ["chop the tomato"]
    obs, *_, info = play(env, SEQ_3[3:8])[-1]
    assert obs == ("There are two fixed cutting boards in the room. A chopped lettuce is on the second cutting board. "
                   "Currently you are standing in front of the first cutting board, carrying a bowl containing "
                   "chopped tomato in hand. " + FINAL3)
    assert info["actions"] == ["put the tomato in the bowl", "put the lettuce in the bowl", "put the onion in the bowl",
                               "take the bowl", "put the bowl on the first cutting board",
                               "put the bowl on the second cutting board", "serve the dish", "chop nothing"]


def test_board_and_carrying_sentences():
    both = state(T3, (3, 2), (1, 0), tomato=(PLATE, 3), lettuce=(PLATE, 3))
    text = describe(T3, observation_vector(T3, both))
    assert text[1:] == ["A bowl containing chopped tomato and lettuce is on the first cutting board.",
                        "Currently you don't have anything in hand."]
    assert actions(T3, observation_vector(T3, both))[3] == "take the bowl"
    carry = state(T3, (4, 4), HAND, tomato=(PLATE, 3), lettuce=(PLATE, 3))
    assert describe(T3, observation_vector(T3, carry))[-1] == (
        "Currently you are carrying a bowl containing chopped tomato and lettuce.")
    t0 = state(T0, (2, 1), (1, 0), tomato=(PLATE, 3))
    assert describe(T0, observation_vector(T0, t0))[1:] == [
        "A bowl containing a chopped tomato is on the cutting board.",
        "Currently you are standing in front of the cutting board without anything in hand."]
    bowl = state(T3, (2, 1), (2, 0), lettuce=(HAND, 3))
    assert describe(T3, observation_vector(T3, bowl))[1:] == [
        "A bowl is on the second cutting board.",
        "Currently you are standing in front of the second cutting board, carrying a chopped lettuce in hand."]


# ---- rewards, optimal play, loophole, caps, seeding -----------------------------------------------------------
@pytest.mark.parametrize("task, moves, ticks_, macro_sum, env_return, undiscounted", [
    ("tomato salad", SEQ_A, [2, 5, 3, 9, 9, 3], 1.145992, 0.895634, 1.169),
    ("tomato salad", SEQ_B, [2, 5, 3, 1, 10, 7], 1.110284, 0.920518, 1.172),
    ("lettuce-tomato salad", SEQ_3, [2, 5, 3, 5, 6, 3, 8, 9, 2, 2], 1.338102, 0.947656, 1.355),
])
def test_optimal_sequences_of_the_spec(task, moves, ticks_, macro_sum, env_return, undiscounted):
    env = OvercookedText(task=task)
    env.reset()
    steps = play(env, moves)
    info = steps[-1][-1]
    assert [s[-1]["macro_action_steps"] for s in steps] == ticks_ and info["ticks"] == sum(ticks_)
    assert [s[2] for s in steps] == [False] * (len(moves) - 1) + [True] and info["success"]
    assert sum(s[1] for s in steps) == pytest.approx(macro_sum, abs=1e-6)
    assert info["env_return"] == pytest.approx(env_return, abs=1e-6)
    plain = OvercookedText(task=task, tick_gamma=1.0)
    plain.reset()
    assert sum(s[1] for s in play(plain, moves)) == pytest.approx(undiscounted)


@pytest.mark.parametrize("task, horizon, criterion, value, plan", [
    ("tomato salad", 10, "macro_sum", 1.145992, SEQ_A),
    ("tomato salad", 7, "env_return", 0.920518, SEQ_B),
    ("tomato salad", 31, "macro_sum", 1.542869, LOOP * 5 + SEQ_A),
    ("lettuce-tomato salad", 11, "macro_sum", 1.338102, SEQ_3),
    ("lettuce-tomato salad", 10, "env_return", 0.947656, SEQ_3),
])
def test_solver_finds_the_spec_optima(task, horizon, criterion, value, plan):
    best = Solver(OvercookedConfig(task=task)).best(horizon, criterion)
    assert best.value == pytest.approx(value, abs=1e-6)
    env = OvercookedText(task=task)
    env.reset()
    steps = play(env, best.macros)
    got = sum(s[1] for s in steps) if criterion == "macro_sum" else steps[-1][-1]["env_return"]
    assert got == pytest.approx(best.value) and steps[-1][2] and best.ticks == steps[-1][-1]["ticks"] < 200
    infos = [env.reset()[1]] + [s[-1] for s in steps[:-1]]
    assert [info["actions"][m] for m, info in zip(best.macros, infos)] == plan


def test_loophole_kept_by_default_and_closed_by_subtask_once():
    loop = LOOP * 5 + SEQ_A
    for once, expected in ((False, 1.542869), (True, 1.542869 - 5 * 0.2 * 0.99 ** 2)):  # 5 chops stop paying
        env = gymnasium.make(ID0, subtask_once=once)
        env.reset(seed=0)
        steps = play(env, loop)
        assert steps[-1][2] and steps[-1][-1]["ticks"] == 126 and len(steps) == 31
        chops = [s[1] for s, m in zip(steps, loop) if m == "chop the tomato"]
        assert [c > 0 for c in chops] == [True] + [not once] * 5
        assert sum(s[1] for s in steps) == pytest.approx(expected, abs=1e-6)
    closed = Solver(OvercookedConfig(subtask_once=True))
    assert closed.best(31).value == pytest.approx(1.145992, abs=1e-6)
    open_3 = Solver(OvercookedConfig(task="lettuce-tomato salad")).best(51)  # 8 loops + SEQ_3 in 197 ticks
    assert open_3.value == pytest.approx(1.973105, abs=1e-6) and len(open_3.macros) == 50 and open_3.ticks == 197
    one_loop = Solver(OvercookedConfig(task="lettuce-tomato salad")).best(15)  # room for one loop + SEQ_3
    closed_3 = Solver(OvercookedConfig(task="lettuce-tomato salad", subtask_once=True)).best(15)
    assert one_loop.value > 1.4 and closed_3.value == pytest.approx(1.338102, abs=1e-6)


def test_macro_step_caps_and_tick_cap_truncate():
    for id_, cap, chop_nothing in ((ID0, 31, 4), (ID3, 51, 7)):
        env = gymnasium.make(id_)
        env.reset(seed=0)
        steps = play(env, [chop_nothing] * cap)
        assert [s[3] for s in steps] == [False] * (cap - 1) + [True] and not any(s[2] for s in steps)
        assert not steps[-1][-1]["success"] and steps[-1][-1]["ticks"] == cap
    env = OvercookedText()  # the original's 200-tick cap: take the bowl / serve the empty bowl, 7 ticks each
    env.reset()
    steps = play(env, [1, 3] * 14 + [1])
    truncated = [s[3] for s in steps]
    assert truncated.index(True) == 28 and steps[28][-1]["ticks"] == 202 and steps[28][-1]["macro_action_steps"] == 7
    with pytest.raises(RuntimeError):
        env.step(0)


def test_seeded_and_deterministic():
    def episode(seed):
        env = gymnasium.make(ID3)
        first = env.reset(seed=seed)
        return [first] + play(env, [0, 4, 7, 6, 3, 6, 1, 5, 7])
    assert episode(3) == episode(3) == episode(11)  # the env has no randomness
    env = OvercookedText(task="lettuce-tomato salad")
    check_env(env, skip_render_check=True)
    s = state(T3, (2, 1), (2, 0), lettuce=(HAND, 3))
    assert env.reset(options={"state": s})[1]["vector"][-9:-7] == (2, 1) and env.state == s
