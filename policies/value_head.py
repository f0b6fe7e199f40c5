"""The value head: an MLP on the LLM's hidden state (GLAM: hidden -> 1024 -> sigmoid -> 1024 -> sigmoid -> 1)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from cluster.config import check_range
from policies.scoring import with_min_rows

_ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


@dataclass(frozen=True)
class ValueHeadConfig:
    """Shape of the value MLP."""

    hidden_sizes: tuple[int, ...] = (1024, 1024)
    """Widths of the hidden layers."""
    activation: Literal["sigmoid", "tanh", "relu"] = "sigmoid"
    """Nonlinearity after each hidden layer."""
    seed: int = 0
    """Seed of its initial weights (every worker and the learner start equal)."""

    def __post_init__(self):
        check_range(self, "hidden_sizes", ge=1)


class ValueHead(nn.Module):
    """float32 MLP mapping [N, hidden] LLM states to [N] values."""

    def __init__(self, input_size: int, config: ValueHeadConfig = ValueHeadConfig()):
        super().__init__()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(config.seed)
        layers: list[nn.Module] = []
        width = input_size
        for size in config.hidden_sizes:
            layers += [nn.Linear(width, size), _ACTIVATIONS[config.activation]()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        torch.random.set_rng_state(generator_state)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return with_min_rows(self.mlp, hidden.float()).squeeze(-1)
