"""The six ICPI envs: hand-checked dynamics, rewards, time limits, exact text, stops, parsing and optima."""
from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import envs
from envs.icpi import Chain, Maze, MiniCatch, MiniInvaders, PointMass, TimeStep
from envs.icpi.catch import CatchState
from envs.icpi.invaders import Alien, InvadersState
from envs.icpi.maze import Cell
from envs.icpi.point_mass import PointState

KINDS = ("done", "reward", "state", "action")


def start(env, state):
    """Reset `env` into `state`; returns the reset info."""
    return env.reset(seed=0, options={"state": state})[1]


def play(env, actions):
    """(observation, reward, terminated, truncated) of each step of `actions`."""
    return [env.step(a)[:4] for a in actions]


def discounted(rewards, gamma):
    return sum(gamma ** t * r for t, r in enumerate(rewards))


# ---- chain and distractor-chain ---------------------------------------------------------------
LEFT, TRY_GOAL, RIGHT = 0, 1, 2


def test_chain_text():
    env = Chain()
    assert env.state_str((3,)) == "assert state == [3] and state != [4]\n"
    assert env.state_str((4,)) == "assert state == [4] and state == [4]\n"
    assert Chain(hint=False).state_str((3,)) == "assert state == [3]\n"
    assert Chain(distractor=True).state_str((6, 3)) == "assert state == [6, 3] and state != [4, 3]\n"
    assert Chain(distractor=True).state_str((4, 0)) == "assert state == [4, 0] and state == [4, 0]\n"
    assert env.action_strings == ("state = left()\n", "reward = try_goal(state)\n", "state = right()\n")
    assert env.initial_str == "state, reward = reset()\n"
    assert [env.stop(k) for k in KINDS] == ["\n"] * 4
    ts = TimeStep(env.state_str((4,)), TRY_GOAL, 1.0, True, env.state_str((4,)))
    assert env.ts_to_string(ts) == ("assert state == [4] and state == [4]\n"
                                    "reward = try_goal(state)\nassert reward == 1\n")


def test_chain_dynamics_and_time_limit():
    env = Chain()
    start(env, (0,))
    assert play(env, [LEFT, RIGHT]) == [("assert state == [0] and state != [4]\n", 0.0, False, False),
                                       ("assert state == [1] and state != [4]\n", 0.0, False, False)]
    start(env, (3,))
    assert play(env, [TRY_GOAL]) == [("assert state == [3] and state != [4]\n", 0.0, True, False)]
    start(env, (7,))
    assert play(env, [RIGHT, LEFT, LEFT, LEFT, TRY_GOAL])[-2:] == [
        ("assert state == [4] and state == [4]\n", 0.0, False, False),
        ("assert state == [4] and state == [4]\n", 1.0, True, False)]
    start(env, (0,))
    steps = play(env, [RIGHT] * 8)
    assert [s[3] for s in steps] == [False] * 7 + [True] and not any(s[2] for s in steps)


def test_distractor_is_redrawn_and_ignored():
    env = Chain(distractor=True)
    env.reset(seed=3, options={"state": (2, 0)})
    states = [env.step(a)[4]["state"] for a in (RIGHT, RIGHT, TRY_GOAL)]
    assert [s[0] for s in states] == [3, 4, 4] and all(0 <= s[1] < 8 for s in states)
    env.reset(seed=3, options={"state": (2, 0)})
    assert [env.step(a)[4]["state"] for a in (RIGHT, RIGHT, TRY_GOAL)] == states
    env.reset(seed=3, options={"state": (4, 7)})
    assert env.step(TRY_GOAL)[1:3] == (1.0, True)
    redrawn = set()
    for seed in range(40):
        env.reset(seed=seed, options={"state": (0, 0)})
        redrawn.add(env.step(LEFT)[4]["state"][1])
    assert redrawn == set(range(8))


@pytest.mark.parametrize("state, optimum", [((4,), 1.0), ((0,), 0.8 ** 4), ((7,), 0.8 ** 3), ((5,), 0.8)])
def test_chain_optimal_return(state, optimum):
    assert start(Chain(), state)["optimal_return"] == pytest.approx(optimum)
    assert start(Chain(distractor=True), (*state, 6))["optimal_return"] == pytest.approx(optimum)


def test_chain_parse_state():
    env, plain, distractor = Chain(), Chain(hint=False), Chain(distractor=True)
    assert env.parse_state("assert state == [3] and state != [4]\n") == "assert state == [3] and state != [4]\n"
    assert plain.parse_state("assert state == [3]\n") == "assert state == [3]\n"
    assert distractor.parse_state("assert state == [6, 3] and state != [4, 3]\n") is not None
    for bad in ["assert state == [3] and state == [4]\n", "assert state == [3] and state != [4]",
                "assert state == [8] and state != [4]\n", "assert state == [3]\n",
                "assert state == [3, 1] and state != [4, 1]\n",
                "assert state == [3]  and state != [4]\n", "assert state == [3] and state != [4]\n\n"]:
        assert env.parse_state(bad) is None, bad
    assert plain.parse_state("assert state == [3] and state != [4]\n") is None
    assert distractor.parse_state("assert state == [6, 3] and state != [4, 6]\n") is None


# ---- maze -------------------------------------------------------------------------------------
M_LEFT, M_DOWN, M_UP, M_RIGHT = range(4)


def test_maze_text():
    env = Maze()
    assert env.state_str(Cell(2, 1)) == "assert state == C(i=2, j=1) and state != C(i=1, j=0)\n"
    assert env.state_str(Cell(1, 0)) == "assert state == C(i=1, j=0) and state == C(i=1, j=0)\n"
    assert Maze(hint=False).state_str(Cell(2, 1)) == "assert state == C(i=2, j=1)\n"
    assert env.action_strings == ("state, reward = left()\n", "state, reward = down()\n",
                                  "state, reward = up()\n", "state, reward = right()\n")
    assert env.initial_str == "state, reward = reset()\n" and [env.stop(k) for k in KINDS] == ["\n"] * 4
    ts = TimeStep(env.state_str(Cell(0, 0)), M_DOWN, 0.0, False, env.state_str(Cell(1, 0)))
    assert env.ts_to_string(ts) == ("assert state == C(i=0, j=0) and state != C(i=1, j=0)\n"
                                    "state, reward = down()\nassert reward == 0\n")


def test_maze_walls_goal_and_time_limit():
    env = Maze()
    for state, action, after in [(Cell(1, 1), M_LEFT, Cell(1, 1)), (Cell(1, 1), M_DOWN, Cell(1, 1)),
                                 (Cell(2, 1), M_UP, Cell(2, 1)), (Cell(0, 0), M_UP, Cell(0, 0)),
                                 (Cell(2, 2), M_RIGHT, Cell(2, 2)), (Cell(1, 1), M_UP, Cell(0, 1)),
                                 (Cell(2, 1), M_LEFT, Cell(2, 0)), (Cell(0, 2), M_DOWN, Cell(1, 2))]:
        start(env, state)
        assert env.step(action)[4]["state"] == after, (state, action)
    start(env, Cell(0, 0))
    assert play(env, [M_DOWN, M_RIGHT]) == [
        ("assert state == C(i=1, j=0) and state == C(i=1, j=0)\n", 0.0, False, False),
        ("assert state == C(i=1, j=0) and state == C(i=1, j=0)\n", 1.0, True, False)]  # the wall holds it
    start(env, Cell(1, 1))
    assert [s[2:] for s in play(env, [M_LEFT] * 8)] == [(False, False)] * 7 + [(False, True)]


@pytest.mark.parametrize("cell, optimum", [(Cell(1, 0), 1.0), (Cell(2, 1), 0.8 ** 2), (Cell(1, 1), 0.8 ** 3),
                                           (Cell(1, 2), 0.8 ** 4), (Cell(0, 0), 0.8)])
def test_maze_optimal_return(cell, optimum):
    assert start(Maze(), cell)["optimal_return"] == pytest.approx(optimum)


def test_maze_parse_state():
    env = Maze()
    line = "assert state == C(i=2, j=1) and state != C(i=1, j=0)\n"
    assert env.parse_state(line) == line
    for bad in ["assert state == C(i=3, j=1) and state != C(i=1, j=0)\n",
                "assert state == C(2, 1) and state != C(1, 0)\n",
                "assert state == C(i=1, j=0) and state != C(i=1, j=0)\n", "assert state == C(i=2, j=1)\n"]:
        assert env.parse_state(bad) is None, bad
    assert Maze(hint=False).parse_state("assert state == C(i=2, j=1)\n") is not None


# ---- mini-catch -------------------------------------------------------------------------------
C_LEFT, C_STAY, C_RIGHT = range(3)


def test_catch_text():
    env = MiniCatch()
    assert env.state_str(CatchState(2, 0, 4)) == (
        "assert paddle == C(2, 0) and ball == C(0, 4) and paddle.x == 2 and ball.x == 0"
        " and paddle.x > ball.x and ball.y == 4\n")
    assert "and paddle.x == ball.x and ball.y == 0\n" in env.state_str(CatchState(1, 1, 0))
    assert MiniCatch(hint=False).state_str(CatchState(2, 0, 4)) == "assert paddle == C(2, 0) and ball == C(0, 4)\n"
    assert env.action_strings == tuple(f"reward = paddle.{m}()\nball.descend()\n" for m in ("left", "stay", "right"))
    assert env.stop("action") == "\nball.descend()\n" and [env.stop(k) for k in KINDS[:3]] == ["\n"] * 3
    assert env.parse_action("reward = paddle.left()" + env.stop("action")) == C_LEFT
    assert env.parse_action("reward = paddle.left()\n") is None
    assert env.initial_str == "paddle, ball = reset()\n" and env.gamma == 1


def test_catch_dynamics():
    env = MiniCatch()
    start(env, CatchState(2, 0, 4))
    steps = play(env, [C_LEFT] * 5)
    assert [s[1:] for s in steps] == [(0.0, False, False)] * 4 + [(1.0, True, False)]
    assert steps[3][0] == steps[4][0] == env.state_str(CatchState(0, 0, 0))  # the last step changes nothing
    start(env, CatchState(2, 3, 4))
    assert [s[1:] for s in play(env, [C_RIGHT, C_RIGHT, C_STAY, C_LEFT, C_RIGHT])][-1] == (0.0, True, False)
    assert env.state == CatchState(2, 3, 0)
    final = env.state_str(env.state)
    ts = TimeStep(final, C_STAY, 0.0, True, final)
    assert env.ts_to_string(ts) == final + env.action_str(C_STAY) + "assert reward == 0\nassert done\n" + final


def test_catch_start_and_optimum():
    env = MiniCatch()
    starts = {env.reset(seed=s)[1]["state"] for s in range(30)}
    assert starts == {CatchState(2, x, 4) for x in range(4)}
    assert all(start(env, s)["optimal_return"] == 1.0 for s in starts)


def test_catch_parse_state():
    env = MiniCatch()
    line = env.state_str(CatchState(3, 1, 2))
    assert env.parse_state(line) == line
    for bad in [line.replace("C(3, 0)", "C(4, 0)"), line.replace("paddle.x > ball.x", "paddle.x < ball.x"),
                "assert paddle == C(3, 0) and ball == C(1, 5)\n", line.replace("C(3, 0)", "C(3, 1)")]:
        assert env.parse_state(bad) is None, bad


# ---- mini-invaders ----------------------------------------------------------------------------
I_LEFT, SHOOT, I_RIGHT = range(3)


def invaders(ship, *alien_xs, y=5):
    return InvadersState(ship, tuple(Alien(x, y) for x in alien_xs))


def test_invaders_text():
    env = MiniInvaders()
    assert env.state_str(invaders(1, 3, 2, y=2)) == (
        "assert ship == C(1, 0) and aliens == [C(3, 2), C(2, 2)] and (ship.x, aliens[0].x, aliens[1].x) == (1, 3, 2)"
        " and ship.x < aliens[0].x and ship.x < aliens[1].x\n")
    assert env.state_str(InvadersState(2, (None, Alien(2, 3)))) == (
        "assert ship == C(2, 0) and aliens == [None, C(2, 3)] and (ship.x, aliens[1].x) == (2, 2)"
        " and ship.x == aliens[1].x\n")
    assert MiniInvaders(hint=False).state_str(invaders(1, 3, 2, y=2)) == (
        "assert ship == C(1, 0) and aliens == [C(3, 2), C(2, 2)]\n")
    assert env.action_strings == ("ship.left()\n", "reward = ship.shoot(aliens)\n", "ship.right()\n")
    assert env.initial_str == "ship, aliens = reset()\n"
    assert env.reward_str(1) == "assert reward == 1\nfor a in aliens:\n    a.descend()\n"
    assert env.stop("reward") == "()\n" and [env.stop(k) for k in ("done", "state", "action")] == ["\n"] * 3
    assert env.parse_reward("assert reward == 1\nfor a in aliens:\n    a.descend" + env.stop("reward")) == 1.0
    assert env.parse_reward("assert reward == 1\n") is None and env.failure_threshold == 1


def test_invaders_kill_both():
    env = MiniInvaders()
    start(env, invaders(1, 3, 2))
    steps = play(env, [I_RIGHT, SHOOT, I_RIGHT, SHOOT])
    assert [s[1:] for s in steps] == [(0.0, False, False), (1.0, False, False), (0.0, False, False), (1.0, True, False)]
    assert env.state == InvadersState(3, (None, None))
    assert discounted([s[1] for s in steps], env.gamma) == pytest.approx(0.8 + 0.8 ** 3)
    final = env.state_str(env.state)
    ts = TimeStep(steps[2][0], SHOOT, 1.0, True, final)
    assert env.ts_to_string(ts).endswith("a.descend()\nassert done\n" + final)


def test_invaders_landing():
    env = MiniInvaders()
    start(env, invaders(0, 3, 1))
    steps = play(env, [I_LEFT] * 6)
    assert [s[2:] for s in steps] == [(False, False)] * 5 + [(True, False)] and not any(s[1] for s in steps)
    assert env.state == invaders(0, 3, 1, y=-1)
    start(env, invaders(0, 3, 1))  # the shot at a landing alien (y == 0) still counts; the other one lands
    assert [s[1:3] for s in play(env, [I_LEFT] * 4 + [I_RIGHT, SHOOT])][-1] == (1.0, True)


@pytest.mark.parametrize("state, optimum", [(invaders(1, 3, 2), 0.8 + 0.8 ** 3), (invaders(0, 3, 1), 0.8 + 0.8 ** 4),
                                            (invaders(0, 1, 3), 0.8 + 0.8 ** 4), (invaders(3, 0, 2), 0.8 + 0.8 ** 4)])
def test_invaders_optimal_return(state, optimum):
    assert start(MiniInvaders(), state)["optimal_return"] == pytest.approx(optimum)


def test_invaders_start_and_parse_state():
    env = MiniInvaders()
    for seed in range(20):
        ship, aliens = env.reset(seed=seed)[1]["state"]
        assert len({ship, *(a.x for a in aliens)}) == 3 and all(a.y == 5 for a in aliens)
    line = env.state_str(InvadersState(2, (None, Alien(2, -1))))
    assert env.parse_state(line) == line
    for bad in [line.replace("None", "C(None)"), line.replace("C(2, -1)", "C(2, 6)"),
                line.replace(" == (2, 2)", " == (2, 3)"), line.replace("C(2, 0)", "C(4, 0)")]:
        assert env.parse_state(bad) is None, bad


# ---- point-mass -------------------------------------------------------------------------------
DECEL, ACCEL = range(2)


def test_point_mass_text():
    env = PointMass()
    assert env.state_str(PointState(-3.45, 0)) == "assert pos == -3.45 and vel == 0.00 and pos < -2 and vel == 0\n"
    assert env.state_str(PointState(2.5, -1)) == "assert pos == 2.50 and vel == -1.00 and 2 < pos and vel != 0\n"
    assert env.state_str(PointState(-2.0, 0)) == "assert pos == -2.00 and vel == 0.00 and -2 <= pos <= 2 and vel == 0\n"
    assert PointMass(hint=False).state_str(PointState(-3.45, 0)) == "assert pos == -3.45 and vel == 0.00\n"
    assert env.action_strings == ("pos, vel = decel(pos, vel)\n", "pos, vel = accel(pos, vel)\n")
    assert env.initial_str == "pos, vel = reset()\n" and [env.stop(k) for k in KINDS] == ["\n"] * 4


def test_point_mass_dynamics():
    env = PointMass()
    start(env, PointState(2.5, 0))
    steps = play(env, [DECEL, ACCEL, DECEL])
    assert steps == [("assert pos == 2.50 and vel == -1.00 and 2 < pos and vel != 0\n", 0.0, False, False),
                     ("assert pos == 1.50 and vel == 0.00 and -2 <= pos <= 2 and vel == 0\n", 0.0, False, False),
                     ("assert pos == 1.50 and vel == -1.00 and -2 <= pos <= 2 and vel != 0\n", 1.0, True, False)]
    ts = TimeStep(steps[1][0], DECEL, 1.0, True, steps[2][0])
    assert env.ts_to_string(ts) == steps[1][0] + "pos, vel = decel(pos, vel)\nassert reward == 1\n" + steps[2][0]
    start(env, PointState(6.0, 0))
    steps = play(env, [ACCEL] * 8)
    assert [s[2:] for s in steps] == [(False, False)] * 7 + [(False, True)]
    assert env.state == PointState(6.0 + sum(range(8)), 8)


@pytest.mark.parametrize("state, optimum", [(PointState(-3.45, 0), 0.8 ** 4), (PointState(6.0, 0), 0.8 ** 4),
                                            (PointState(-2.0, 0), 1.0), (PointState(2.5, 0), 0.8 ** 2),
                                            (PointState(3.0, 0), 0.8 ** 2), (PointState(3.01, 0), 0.8 ** 4)])
def test_point_mass_optimal_return(state, optimum):
    assert start(PointMass(), state)["optimal_return"] == pytest.approx(optimum)


def test_point_mass_start_and_parse_state():
    env = PointMass()
    positions = [env.reset(seed=s)[1]["state"].pos for s in range(20)]
    assert all(2 <= abs(p) <= 6 and p == round(p, 2) for p in positions) and min(positions) < 0 < max(positions)
    line = "assert pos == 13.45 and vel == -3.00 and 2 < pos and vel != 0\n"
    assert env.parse_state(line) == line
    for bad in ["assert pos == -0.00 and vel == 0.00 and -2 <= pos <= 2 and vel == 0\n",
                "assert pos == 3.5 and vel == 0.00 and 2 < pos and vel == 0\n",
                "assert pos == 3.50 and vel == 0.50 and 2 < pos and vel != 0\n",
                "assert pos == 1.99 and vel == 0.00 and 2 < pos and vel == 0\n", line.rstrip("\n")]:
        assert env.parse_state(bad) is None, bad


# ---- all envs ---------------------------------------------------------------------------------
TABLE = {  # id: (gamma, horizon, time_limit, number of actions)
    "llmrl/icpi-chain-v0": (0.8, 6, 8, 3), "llmrl/icpi-distractor-chain-v0": (0.8, 6, 8, 3),
    "llmrl/icpi-maze-v0": (0.8, 6, 8, 4), "llmrl/icpi-mini-catch-v0": (1.0, 5, 5, 3),
    "llmrl/icpi-mini-invaders-v0": (0.8, 8, 6, 3), "llmrl/icpi-point-mass-v0": (0.8, 8, 8, 2),
}


def test_ids_are_registered():
    assert set(envs.ICPI_ENV_IDS) == set(TABLE)


@pytest.mark.parametrize("env_id", sorted(TABLE))
@pytest.mark.parametrize("hint", [True, False])
def test_make_seeding_and_regret(env_id, hint):
    env = gymnasium.make(env_id, hint=hint)
    core = env.unwrapped
    assert (core.gamma, core.horizon, core.time_limit, env.action_space.n) == TABLE[env_id]
    assert env_id == f"llmrl/icpi-{core.name}-v0"
    rng = np.random.default_rng(0)
    for seed in range(5):
        actions = rng.integers(env.action_space.n, size=core.time_limit)
        runs = []
        for _ in range(2):
            obs, info = env.reset(seed=seed)
            episode = [(obs, info["state"], info["optimal_return"])]
            for action in actions:
                obs, reward, terminated, truncated, info = env.step(action)
                episode.append((obs, reward, terminated, truncated, info["state"]))
                assert obs == core.state_str(info["state"]) and core.parse_state(obs) == obs
                assert env.observation_space.contains(obs)
                if terminated or truncated:
                    break
            runs.append(episode)
        assert runs[0] == runs[1]
        assert terminated or truncated
        regret = runs[0][0][2] - discounted([step[1] for step in runs[0][1:]], core.gamma)
        assert regret >= -1e-12
    assert len({env.reset(seed=s)[0] for s in range(10)}) > 1
