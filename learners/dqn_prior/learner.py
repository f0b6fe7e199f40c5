"""The Q-network learner: an MLP on frozen text features of (state, action), a target copy, AdamW, TD loss."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from learners.dqn_prior.config import QNetworkConfig
from learners.dqn_prior.posterior import next_state_values, td_targets
from learners.dqn_prior.replay import Transition, pair_text
from learners.state_io import load_state, save_state
from policies.text_encoder import TextEncoder

MIN_FEATURE_STD = 1e-4
"""QLearner.standardize's floor on a feature's std (features are L2-normalised: entries ~0.05, their spread
between one env's texts ~0.005)."""


def q_mlp(input_size: int, hidden_sizes: Sequence[int], seed: int) -> nn.Sequential:
    """input -> hidden (ReLU) ... -> 1, initialised from `seed`."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = input_size
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, 1))
    torch.random.set_rng_state(generator_state)
    return nn.Sequential(*layers)


class QLearner:
    """Q(s, a) = MLP((features(s, a) - shift) / scale); only the MLP trains. features: the frozen encoder's vector
    of "Observation: s, Action: a." (q_features: joint) or its vectors of s and of a, concatenated (separate).

    shift and scale are 0 and 1 until `standardize(pairs)` sets them to the features' mean and std (CQL does it
    over its dataset)."""

    def __init__(self, encoder: TextEncoder, config: QNetworkConfig, seed: int = 0):
        self.encoder = encoder
        self.config = config
        width = encoder.dim if config.q_features == "joint" else 2 * encoder.dim
        self.online = q_mlp(width, config.hidden_sizes, seed)
        self.feature_shift = torch.zeros(width)
        self.feature_scale = torch.ones(width)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.online.parameters(), lr=config.lr)
        self.updates = 0

    def q_values(self, state: str, actions: Sequence[str], target: bool = False) -> torch.Tensor:
        """[len(actions)] Q-values (no gradient)."""
        if not actions:
            return torch.zeros(0)
        with torch.no_grad():
            return (self.target if target else self.online)(self.features([(state, a) for a in actions])).squeeze(-1)

    def features(self, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        """[len(pairs), width] inputs of the MLP for (state, action) pairs: the encoder's features, standardized."""
        return (self._raw_features(pairs) - self.feature_shift) / self.feature_scale

    def _raw_features(self, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        if self.config.q_features == "joint":
            return self.encoder.encode([pair_text(s, a) for s, a in pairs])
        return torch.cat([self.encoder.encode([s for s, _ in pairs]), self.encoder.encode([a for _, a in pairs])], 1)

    def standardize(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Shift and scale the features by their mean and std over `pairs`: over each distinct pair text (joint),
        or over each distinct state and each distinct action (separate). Sentence features of one env's texts
        share most of their direction (FrozenLake's: cosine 0.98-0.99 between states), which an MLP on the raw
        features hardly tells apart. A feature that hardly varies (std below MIN_FEATURE_STD: MiniLM has
        constant ones) is divided by that floor, so it stays near 0."""
        if self.config.q_features == "joint":
            parts = [self.encoder.encode(list(dict.fromkeys(pair_text(s, a) for s, a in pairs)))]
        else:
            parts = [self.encoder.encode(list(dict.fromkeys(texts))) for texts in zip(*pairs)]
        self.feature_shift = torch.cat([p.mean(0) for p in parts])
        self.feature_scale = torch.cat([p.std(0, unbiased=False) for p in parts]).clamp(min=MIN_FEATURE_STD)

    def update(self, batch: Sequence[Transition]) -> dict[str, float]:
        """One gradient step on the TD loss; then the target update."""
        c = self.config
        next_target = [self.q_values(t.next_state, t.next_actions, target=True) for t in batch]
        next_online = [self.q_values(t.next_state, t.next_actions) for t in batch] if c.double_dqn else None
        rewards = torch.tensor([t.reward for t in batch], dtype=torch.float32)
        terminated = torch.tensor([t.terminated for t in batch])
        targets = td_targets(rewards, terminated, next_state_values(next_target, next_online), c.gamma)
        features = self.features([(t.state, t.action) for t in batch])
        q = self.online(features).squeeze(-1)
        loss = nn.functional.mse_loss(q, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.online.parameters(), c.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        self._update_target()
        return {"loss_td": float(loss.detach()), "q_mean": float(q.detach().mean()), "grad_norm": float(grad_norm)}

    def _update_target(self) -> None:
        c = self.config
        if c.target_update == "hard":
            if self.updates % c.target_every == 0:
                self.target.load_state_dict(self.online.state_dict())
            return
        with torch.no_grad():
            for target, online in zip(self.target.parameters(), self.online.parameters()):
                target.lerp_(online, c.target_tau)

    def save(self, directory: Path) -> None:
        save_state(directory, "q_learner", {"online": self.online.state_dict(), "target": self.target.state_dict(),
                                            "optimizer": self.optimizer.state_dict(), "updates": self.updates,
                                            "feature_shift": self.feature_shift, "feature_scale": self.feature_scale})

    def restore(self, directory: Path) -> None:
        state = load_state(directory, "q_learner")
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = state["updates"]
        width = self.feature_shift.numel()  # checkpoints written before standardization have neither: the identity
        self.feature_shift = state.get("feature_shift", torch.zeros(width))
        self.feature_scale = state.get("feature_scale", torch.ones(width))
