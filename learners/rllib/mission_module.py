"""An RLlib RLModule for BabyAI tasks whose mission changes between episodes (GLAM's Symbolic-PPO baseline,
after BabyAI's): a conv net on minigrid's 7x7 view, a GRU over the mission's word ids in order, the agent's
direction, merged into one trunk with a policy and a value head. It reads the `image_mission` observation of
learners/rllib/symbolic.py; PPO only (it has a value function, no Q head)."""
from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

from learners.rllib.config import MISSION_MODULE_DEFAULTS
from learners.rllib.symbolic import DIRECTIONS, IMAGE_SIZE, UNKNOWN_WORD


def split_observation(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An image_mission batch [B, 147 + 4 + T] as (images [B, 3, 7, 7], directions [B, 4], word ids [B, T])."""
    image = obs[:, :IMAGE_SIZE].reshape(-1, 7, 7, 3).permute(0, 3, 1, 2)
    direction = obs[:, IMAGE_SIZE:IMAGE_SIZE + DIRECTIONS]
    return image, direction, obs[:, IMAGE_SIZE + DIRECTIONS:].long()


def last_valid(outputs: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Per row, the sequence output at its last non-padding word (ids are right-padded with 0)."""
    lengths = (ids > 0).sum(dim=1).clamp(min=1)
    return outputs[torch.arange(outputs.shape[0], device=outputs.device), lengths - 1]


class MissionConvModule(TorchRLModule, ValueFunctionAPI):
    """Conv(view) + GRU(mission) + direction -> ReLU trunk -> action logits and value."""

    def setup(self) -> None:
        settings = {key: self.model_config.get(key) or default for key, default in MISSION_MODULE_DEFAULTS.items()}
        layers, channels, size = [], 3, 7
        for out, kernel, stride in settings["conv_filters"]:
            kernel, stride = _square(kernel), _square(stride)
            layers += [nn.Conv2d(channels, out, kernel, stride), nn.ReLU()]
            channels, size = out, (size - kernel) // stride + 1
        self.view = nn.Sequential(*layers, nn.Flatten())
        self.words = nn.Embedding(UNKNOWN_WORD + 1, settings["word_dim"], padding_idx=0)
        self.mission = nn.GRU(settings["word_dim"], settings["mission_dim"], batch_first=True)
        features = channels * size * size + DIRECTIONS + settings["mission_dim"]
        self.trunk = nn.Sequential(nn.Linear(features, settings["hidden"]), nn.ReLU())
        self.policy = nn.Linear(settings["hidden"], self.action_space.n)
        self.value = nn.Linear(settings["hidden"], 1)

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        image, direction, ids = split_observation(obs)
        mission, _ = self.mission(self.words(ids))
        return self.trunk(torch.cat([self.view(image), direction, last_valid(mission, ids)], dim=1))

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self.policy(self.embed(batch[Columns.OBS]))}

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        embeddings = self.embed(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: self.policy(embeddings), Columns.EMBEDDINGS: embeddings}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        if embeddings is None:
            embeddings = self.embed(batch[Columns.OBS])
        return self.value(embeddings).squeeze(-1)


def _square(value: int | list[int]) -> int:
    """A conv kernel or stride given as n or [n, n] (RLlib's conv_filters style); only square ones."""
    if isinstance(value, int):
        return value
    if len(value) != 2 or value[0] != value[1]:
        raise ValueError(f"rllib.rl_module.model_config.conv_filters: {value!r}; use square kernels and strides")
    return int(value[0])
