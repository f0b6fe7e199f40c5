"""Text Overcooked (TWOSOME's macro-action kitchen, map A, one agent): tomato salad and tomato-lettuce salad."""
from __future__ import annotations

import gymnasium

from envs.overcooked.env import OvercookedConfig, OvercookedText
from envs.overcooked.kitchen import TOMATO_LETTUCE_SALAD, TOMATO_SALAD, Rewards, State, Task
from envs.overcooked.solver import Plan, Solver

OVERCOOKED_SPECS: dict[str, tuple[str, int]] = {
    "llmrl/Overcooked-TomatoSalad-v0": (TOMATO_SALAD.name, 31),
    "llmrl/Overcooked-TomatoLettuceSalad-v0": (TOMATO_LETTUCE_SALAD.name, 51),
}
"""Registered id -> (task string, macro-step cap used as the TimeLimit, as in RL-LLM-Prior)."""
OVERCOOKED_ENV_IDS = tuple(OVERCOOKED_SPECS)


def register_overcooked() -> None:
    """Register the Overcooked ids with Gymnasium (registered ids are left alone); kwargs of
    gymnasium.make go to OvercookedConfig, e.g. subtask_once=True."""
    for id_, (task, cap) in OVERCOOKED_SPECS.items():
        if id_ not in gymnasium.registry:
            gymnasium.register(id=id_, entry_point="envs.overcooked.env:OvercookedText", kwargs={"task": task},
                               max_episode_steps=cap)


__all__ = ["OVERCOOKED_ENV_IDS", "OvercookedConfig", "OvercookedText", "Plan", "Rewards", "Solver", "State", "Task",
           "register_overcooked"]
