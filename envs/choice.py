"""A one-step text choice: the mission names nothing, one action string is rewarded. For smoke tests
and learning checks: a policy that learns raises that string's probability."""
from __future__ import annotations

import gymnasium


class TextChoice(gymnasium.Env):
    """Each episode is one step: choosing `actions[rewarded]` gives reward 1, anything else 0.

    Speaks the text-env interface of the runners: info carries "mission", "descriptions", "actions".
    """

    def __init__(self, actions: tuple[str, ...] = ("apple", "banana", "cherry", "grape"), rewarded: int = 2,
                 mission: str = "pick the fruit you like best"):
        if not 0 <= rewarded < len(actions):
            raise ValueError(f"rewarded={rewarded} must index one of the {len(actions)} actions")
        self.actions = tuple(actions)
        self.rewarded = rewarded
        self.mission = mission
        self.action_space = gymnasium.spaces.Discrete(len(actions))
        self.observation_space = gymnasium.spaces.Discrete(1)

    def _info(self) -> dict:
        return {"mission": self.mission, "descriptions": ["You see a basket of fruit"], "actions": list(self.actions)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return 0, self._info()

    def step(self, action):
        index = self.actions.index(action) if action in self.actions else action
        if isinstance(index, str) or not 0 <= int(index) < len(self.actions):
            raise ValueError(f"invalid action {action!r}: use an index 0..{len(self.actions) - 1} or one of {self.actions}")
        return 0, float(int(index) == self.rewarded), True, False, self._info()
