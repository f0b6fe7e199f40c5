"""BabyAI-Text: minigrid's BabyAI levels with GLAM's text observations and string actions."""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import gymnasium
import numpy as np
from minigrid.envs.babyai import GoToLocal, GoToRedBall, OpenDoor, PickupLoc, PutNextLocal
from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel

from envs.describe import describe
from envs.local_tasks import MIXED_TEST, MIXED_TRAIN, OPEN_LOCAL, PICKUP_THEN_GOTO, LocalTasks
from envs.vocabulary import STANDARD, VOCABULARIES, Vocabulary

LEVELS: dict[str, Callable[..., RoomGridLevel]] = {
    "GoToRedBall": GoToRedBall,
    "GoToLocal": GoToLocal,
    "PickupLocal": PickupLoc,
    "PutNextLocal": PutNextLocal,
    "OpenDoor": OpenDoor,
    "OpenLocal": partial(LocalTasks, OPEN_LOCAL),
    "PickupThenGoToLocal": partial(LocalTasks, PICKUP_THEN_GOTO),
    "MixedTrainLocal": partial(LocalTasks, MIXED_TRAIN),
    "MixedTestLocal": partial(LocalTasks, MIXED_TEST),
}
"""BabyAI levels by name: minigrid's own where it has one, else built from its machinery."""


class BabyAIText(gymnasium.Wrapper):
    """A BabyAI level speaking GLAM's text. Observations are minigrid's (with the mission in the
    vocabulary's words); info adds "descriptions" (clauses of the agent's view), "mission" and
    "actions" (the six action strings). step takes an action index 0..5 or one of those strings;
    the reward is minigrid's (1 - 0.9 * steps / max_steps on success) times reward_scale."""

    def __init__(self, env: gymnasium.Env, vocabulary: Vocabulary = STANDARD, reward_scale: float = 1.0):
        super().__init__(env)
        self.vocabulary = vocabulary
        self.reward_scale = reward_scale
        self.action_space = gymnasium.spaces.Discrete(len(vocabulary.actions))

    @property
    def actions(self) -> tuple[str, ...]:
        return self.vocabulary.actions

    def action_index(self, action: int | str) -> int:
        """The minigrid action for an index or an action string; ValueError for anything else."""
        if isinstance(action, str) and action in self.actions:
            return self.actions.index(action)
        if isinstance(action, (int, np.integer)) and not isinstance(action, bool) and 0 <= action < len(self.actions):
            return int(action)
        allowed = ", ".join(repr(a) for a in self.actions)
        raise ValueError(f"invalid action {action!r}: use an index 0..{len(self.actions) - 1} or one of {allowed}")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._with_text(obs, info)

    def step(self, action: int | str):
        obs, reward, terminated, truncated, info = self.env.step(self.action_index(action))
        obs, info = self._with_text(obs, info)
        return obs, float(reward) * self.reward_scale, terminated, truncated, info

    def _with_text(self, obs: dict, info: dict[str, Any]) -> tuple[dict, dict[str, Any]]:
        level = self.env.unwrapped
        mission = self.vocabulary.translate(level.mission)
        text = {
            "descriptions": [self.vocabulary.translate(c) for c in describe(level)],
            "mission": mission,
            "actions": list(self.actions),
        }
        return {**obs, "mission": mission}, {**info, **text}


def make_babyai_text(level: str, vocabulary: str = "standard", reward_scale: float = 1.0, **level_kwargs) -> BabyAIText:
    """Build a BabyAI-Text env: a level of LEVELS (level_kwargs go to it, e.g. render_mode) with the
    named vocabulary of VOCABULARIES; the entry point of the registered llmrl/ ids."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; known: {', '.join(LEVELS)}")
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"unknown vocabulary {vocabulary!r}; known: {', '.join(VOCABULARIES)}")
    return BabyAIText(LEVELS[level](**level_kwargs), VOCABULARIES[vocabulary], reward_scale)
