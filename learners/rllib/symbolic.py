"""Symbolic observations of our text envs, for RLlib baselines (RLlib has no text encoder).

The env is the same registered `llmrl/` env (same dynamics, seeds, rewards); only the observation changes:
- BabyAI-Text: minigrid's 7x7x3 view as float32 (`image`, for a conv net), or that view flattened with the
  agent's direction (one-hot) and the mission as a bag of words over BabyAI's vocabulary (`flat`, for an MLP),
  or with the mission as word ids in order (`image_mission`, for learners/rllib/mission_module.py: a conv net
  on the view and a GRU on the mission, for tasks whose mission changes between episodes).
- FrozenLake: the one-hot of the agent's cell.
- ICPI envs: the env's raw state (`info["state"]`), flattened to numbers.
Every step's info gets `success` at an episode's end (BabyAI: reached the goal; FrozenLake: its own flag;
ICPI: return above the env's failure threshold), for the success_rate column.
"""
from __future__ import annotations

from typing import Any, Literal

import gymnasium
import numpy as np

Observation = Literal["auto", "image", "flat", "image_mission"]
BABYAI_VIEWS = ("image", "flat", "image_mission")

MISSION_WORDS = ("go", "to", "the", "a", "pick", "up", "open", "put", "next", "and", "then", "after", "you",
                 "door", "key", "ball", "box", "red", "green", "blue", "purple", "yellow", "grey", "on", "your",
                 "left", "right", "in", "front", "of", "behind")
"""BabyAI's mission vocabulary (GoTo, Pickup, Open, PutNext, Sequence and Loc missions); others are dropped
from the bag of words and are UNKNOWN_WORD in word ids."""
IMAGE_SIZE = 7 * 7 * 3
"""Minigrid's agent view, flattened."""
DIRECTIONS = 4
MISSION_TOKENS = 24
"""Word ids kept per mission (BabyAI's local missions have at most 14 words); longer ones are refused."""
UNKNOWN_WORD = len(MISSION_WORDS) + 1
"""The id of a word outside MISSION_WORDS (ids 1..len(MISSION_WORDS) are its words, 0 pads)."""


def mission_word_ids(mission: str) -> np.ndarray:
    """The mission's words as ids in order (see UNKNOWN_WORD), zero-padded to MISSION_TOKENS."""
    words = mission.replace(",", " ").split()
    if len(words) > MISSION_TOKENS:
        raise ValueError(f"mission {mission!r} has {len(words)} words; the image_mission view holds "
                         f"{MISSION_TOKENS} (learners/rllib/symbolic.MISSION_TOKENS)")
    ids = np.zeros(MISSION_TOKENS, dtype=np.float32)
    ids[:len(words)] = [MISSION_WORDS.index(w) + 1 if w in MISSION_WORDS else UNKNOWN_WORD for w in words]
    return ids


def make_symbolic_env(env_id: str, kwargs: dict | None = None, observation: Observation = "auto") -> gymnasium.Env:
    """The registered text env `env_id` with a numeric observation (see the module docstring)."""
    from actors.env_runner import make_text_env

    env = make_text_env(env_id, **(kwargs or {}))
    kind = _kind(env)
    if kind == "babyai":
        return BabyAISymbolic(env, "image" if observation == "auto" else observation)
    if observation not in ("auto", "flat"):
        raise ValueError(f"observation: {observation!r} is for BabyAI envs only; {env_id} has a flat state "
                         f"(use auto or flat)")
    return FrozenLakeSymbolic(env) if kind == "frozenlake" else StateSymbolic(env)


def _kind(env: gymnasium.Env) -> str:
    from envs.babyai_text import BabyAIText
    from envs.frozenlake_text import FrozenLakeText
    from envs.icpi.base import IcpiEnv

    inner = env
    while True:
        if isinstance(inner, BabyAIText):
            return "babyai"
        if isinstance(inner, FrozenLakeText):
            return "frozenlake"
        if isinstance(inner, IcpiEnv):
            return "icpi"
        if not hasattr(inner, "env"):
            raise ValueError(f"{env.spec.id if env.spec else env} has no symbolic observation for RLlib: "
                             f"use a BabyAI-Text, FrozenLake or ICPI env (text-only envs need an LLM method)")
        inner = inner.env


class BabyAISymbolic(gymnasium.Wrapper):
    """BabyAI-Text with minigrid's view as the observation (image), or view + direction + the mission as a bag
    of words (flat) or as word ids in order (image_mission)."""

    def __init__(self, env: gymnasium.Env, observation: Literal["image", "flat", "image_mission"]):
        super().__init__(env)
        if observation not in BABYAI_VIEWS:
            raise ValueError(f"observation: {observation!r}; BabyAI envs take {', '.join(BABYAI_VIEWS)} or auto")
        self.observation = observation
        shape = env.observation_space["image"].shape
        if observation == "image_mission" and int(np.prod(shape)) != IMAGE_SIZE:
            raise ValueError(f"observation: image_mission takes minigrid's 7x7 view; this env's is {shape}")
        mission = len(MISSION_WORDS) if observation == "flat" else MISSION_TOKENS
        size = int(np.prod(shape)) + DIRECTIONS + mission
        self.observation_space = (gymnasium.spaces.Box(0.0, 255.0, shape, np.float32) if observation == "image"
                                  else gymnasium.spaces.Box(0.0, 255.0, (size,), np.float32))

    def encode(self, obs: dict) -> np.ndarray:
        image = np.asarray(obs["image"], dtype=np.float32)
        if self.observation == "image":
            return image
        direction = np.eye(DIRECTIONS, dtype=np.float32)[int(obs["direction"])]
        if self.observation == "image_mission":
            return np.concatenate([image.ravel(), direction, mission_word_ids(str(obs["mission"]))])
        words = str(obs["mission"]).replace(",", " ").split()
        mission = np.array([float(w in words) for w in MISSION_WORDS], dtype=np.float32)
        return np.concatenate([image.ravel(), direction, mission])

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self.encode(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(int(action))
        if terminated or truncated:
            info = {**info, "success": bool(terminated and reward > 0)}
        return self.encode(obs), reward, terminated, truncated, info


class FrozenLakeSymbolic(gymnasium.Wrapper):
    """Text FrozenLake with the one-hot of the agent's cell as the observation."""

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        self.cells = int(env.unwrapped.observation_space.n)  # gymnasium's FrozenLake: Discrete(rows x columns)
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, (self.cells,), np.float32)

    def encode(self, info: dict) -> np.ndarray:
        return np.eye(self.cells, dtype=np.float32)[int(info["state"])]

    def reset(self, **kwargs):
        _, info = self.env.reset(**kwargs)
        return self.encode(info), info

    def step(self, action):
        _, reward, terminated, truncated, info = self.env.step(int(action))
        if terminated or truncated:
            info = {**info, "success": bool(info.get("success", terminated and reward > 0))}
        return self.encode(info), reward, terminated, truncated, info


class StateSymbolic(gymnasium.Wrapper):
    """An ICPI env with its raw state, flattened to float32 numbers, as the observation; a state that shrinks
    (mini-invaders loses aliens) is padded with zeros to the size of the first one."""

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        _, info = env.reset(seed=0)
        self.size = _flat(info["state"]).size
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.size,), np.float32)
        self.ret = 0.0

    def reset(self, **kwargs):
        _, info = self.env.reset(**kwargs)
        self.ret = 0.0
        return self.encode(info), info

    def encode(self, info: dict) -> np.ndarray:
        vector = _flat(info["state"])[:self.size]
        return np.pad(vector, (0, self.size - vector.size))

    def step(self, action):
        _, reward, terminated, truncated, info = self.env.step(int(action))
        self.ret += float(reward)
        if terminated or truncated:
            info = {**info, "success": self.ret > self.env.unwrapped.failure_threshold}
        return self.encode(info), reward, terminated, truncated, info


def _flat(state: Any) -> np.ndarray:
    """A raw ICPI state (number, tuple, nested tuples, array, dataclass of those) as a float32 vector."""
    if hasattr(state, "__dataclass_fields__"):
        import dataclasses

        state = [getattr(state, f.name) for f in dataclasses.fields(state)]
    if isinstance(state, (list, tuple)):
        parts = [_flat(s) for s in state]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return np.asarray(state, dtype=np.float32).ravel()
