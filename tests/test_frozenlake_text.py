"""Text FrozenLake: exact text, gymnasium's dynamics, horizon, seeding, a BFS solver, action parsing."""
from __future__ import annotations

from collections import deque

import gymnasium
import pytest

import envs  # noqa: F401  (registers the llmrl/ ids)
from envs.frozenlake_text import ACTIONS, FrozenLakeText, describe_position

MAP_4X4 = gymnasium.make("FrozenLake-v1", map_name="4x4").unwrapped.desc  # SFFF / FHFH / FFFH / HFFG


def test_text_at_start():
    assert describe_position(MAP_4X4, 0, 0) == [
        "You are at row 1, column 1 of a 4x4 frozen lake.",
        "Above you is the edge of the lake.",
        "Below you is frozen ice.",
        "To your left is the edge of the lake.",
        "To your right is frozen ice.",
        "The goal is 3 steps down and 3 steps right.",
    ]


def test_text_between_holes_and_next_to_goal():
    assert describe_position(MAP_4X4, 1, 2) == [
        "You are at row 2, column 3 of a 4x4 frozen lake.",
        "Above you is frozen ice.",
        "Below you is frozen ice.",
        "To your left is a hole.",
        "To your right is a hole.",
        "The goal is 2 steps down and 1 step right.",
    ]
    assert describe_position(MAP_4X4, 3, 2)[1:] == [
        "Above you is frozen ice.",
        "Below you is the edge of the lake.",
        "To your left is frozen ice.",
        "To your right is the goal.",
        "The goal is 1 step right.",
    ]


def test_text_in_a_hole_and_at_the_goal():
    assert describe_position(MAP_4X4, 1, 3) == [
        "You are at row 2, column 4 of a 4x4 frozen lake.",
        "You fell into a hole.",
        "Above you is frozen ice.",
        "Below you is a hole.",
        "To your left is frozen ice.",
        "To your right is the edge of the lake.",
        "The goal is 2 steps down.",
    ]
    assert describe_position(MAP_4X4, 3, 3) == [
        "You are at row 4, column 4 of a 4x4 frozen lake.",
        "You reached the goal.",
        "Above you is a hole.",
        "Below you is the edge of the lake.",
        "To your left is frozen ice.",
        "To your right is the edge of the lake.",
    ]


@pytest.mark.parametrize("map_name,slippery", [("4x4", False), ("8x8", False), ("4x4", True)])
def test_dynamics_equal_gymnasium(map_name, slippery):
    env = FrozenLakeText(map_name, slippery=slippery)
    ref = gymnasium.make("FrozenLake-v1", map_name=map_name, is_slippery=slippery)
    rng = __import__("random").Random(0)
    for episode in range(20):
        obs, info = env.reset(seed=episode)
        state, _ = ref.reset(seed=episode)
        assert info["state"] == state and obs == " ".join(info["descriptions"])
        for _ in range(env.horizon):
            action = rng.randrange(4)
            obs, reward, terminated, truncated, info = env.step(ACTIONS[action])
            state, ref_reward, ref_terminated, _, _ = ref.step(action)
            assert (info["state"], reward, terminated) == (state, ref_reward, ref_terminated)
            if terminated or truncated:
                assert info["success"] == (reward == 1.0)
                break


def test_truncation_at_horizon():
    for env_id, horizon in (("llmrl/FrozenLake4x4-v0", 20), ("llmrl/FrozenLake8x8-v0", 100)):
        env = gymnasium.make(env_id)
        _, info = env.reset(seed=0)
        assert info["actions"] == list(ACTIONS) and info["mission"] and "success" not in info
        for t in range(1, horizon + 1):
            _, reward, terminated, truncated, info = env.step("go up")  # the edge: stays at the start
            assert not terminated and reward == 0.0 and truncated == (t == horizon)
        assert info["success"] is False


def test_slippery_seed_repeats():
    def trajectory(seed):
        env = FrozenLakeText("4x4", slippery=True)
        env.reset(seed=seed)
        states = []
        for _ in range(20):
            _, _, terminated, truncated, info = env.step("go right")
            states.append(info["state"])
            if terminated or truncated:
                break
        return states

    assert trajectory(3) == trajectory(3)
    assert len({tuple(trajectory(s)) for s in range(10)}) > 1


def shortest_path(desc) -> list[int]:
    """BFS over gymnasium's map: the action indices of a shortest safe path from S to G."""
    grid = [[c.decode() for c in row] for row in desc]
    nrow, ncol = len(grid), len(grid[0])
    moves = {0: (0, -1), 1: (1, 0), 2: (0, 1), 3: (-1, 0)}
    start = next((r, c) for r in range(nrow) for c in range(ncol) if grid[r][c] == "S")
    parent = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if grid[cell[0]][cell[1]] == "G":
            path = []
            while parent[cell] is not None:
                cell, action = parent[cell]
                path.append(action)
            return path[::-1]
        for action, (dr, dc) in moves.items():
            nxt = (min(max(cell[0] + dr, 0), nrow - 1), min(max(cell[1] + dc, 0), ncol - 1))
            if nxt not in parent and grid[nxt[0]][nxt[1]] != "H":
                parent[nxt] = (cell, action)
                queue.append(nxt)
    raise AssertionError("no path")


@pytest.mark.parametrize("env_id,optimal", [("llmrl/FrozenLake4x4-v0", 6), ("llmrl/FrozenLake8x8-v0", 14)])
def test_bfs_solver_wins_in_optimal_steps(env_id, optimal):
    env = gymnasium.make(env_id)
    env.reset(seed=0)
    path = shortest_path(env.unwrapped.desc)
    assert len(path) == optimal
    for t, action in enumerate(path):
        use = ACTIONS[action] if t % 2 else action  # strings and indices alike
        obs, reward, terminated, truncated, info = env.step(use)
    assert terminated and not truncated and reward == 1.0 and info["success"] is True
    assert "You reached the goal." in obs


def test_action_by_string_and_index_agree():
    a, b = FrozenLakeText(), FrozenLakeText()
    a.reset(seed=0)
    b.reset(seed=0)
    for index, name in enumerate(ACTIONS):
        assert a.step(index)[0] == b.step(name)[0]


@pytest.mark.parametrize("bad", ["go north", "jump", 4, -1, True, 1.0])
def test_bad_action_errors(bad):
    env = FrozenLakeText()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="go left"):
        env.step(bad)


def test_unknown_map():
    with pytest.raises(ValueError, match="4x4"):
        FrozenLakeText("5x5")
