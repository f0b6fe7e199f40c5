"""The CQL loss (pure) and the learner that trains DQN-Prior's Q-network on it.

L = mean_i [ 0.5 * (Q(s_i, a_i) - y_i)^2 ] + lambda * mean_i [ logsumexp_{c in C(s_i)} Q(s_i, c) - Q(s_i, a_i) ]
with y_i = r_i + gamma * (1 - terminated_i) * max_{c' in C'(s'_i)} Q_target(s'_i, c'). C(s) is the set of
distinct LLM proposals at s plus the data action (CQL-Prior) or every admissible action (plain CQL); C'(s')
the proposals (or admissible actions) at s'. Both terms train (the reference dropped the CQL term).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from learners.cql_prior.config import CQLConfig
from learners.dqn_prior.learner import QLearner
from learners.dqn_prior.posterior import next_state_values, td_targets
from learners.dqn_prior.replay import Transition
from policies.text_encoder import TextEncoder


def cql_loss(q_data: torch.Tensor, q_candidates: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor,
             coef: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, td, cql) for a batch: q_data [B] = Q(s, a_data); q_candidates [B, C] padded, mask [B, C] true
    where a candidate is real (each row must hold one: the data action); targets [B] (no gradient)."""
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every row of the mask needs at least one candidate (the data action)")
    td = 0.5 * (q_data - targets).pow(2).mean()
    lse = torch.logsumexp(q_candidates.masked_fill(~mask, float("-inf")), dim=1)
    cql = (lse - q_data).mean()
    return td + coef * cql, td, cql


@dataclass(frozen=True)
class OfflineTransition(Transition):
    """A dataset transition as the learner reads it: the candidates at s (`actions`, holding the data
    action) added to DQN-Prior's Transition (whose `next_actions` are the candidates at s')."""

    actions: tuple[str, ...] = ()


def pad(rows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged 1-D tensors -> ([B, max_len] zero-padded, [B, max_len] bool mask of the real entries)."""
    width = max(len(r) for r in rows)
    padded = torch.stack([nn.functional.pad(r, (0, width - len(r))) for r in rows])
    mask = torch.arange(width).unsqueeze(0) < torch.tensor([len(r) for r in rows]).unsqueeze(1)
    return padded, mask


class CQLLearner(QLearner):
    """DQN-Prior's Q-network (frozen encoder, MLP, soft target, AdamW) trained on the CQL loss."""

    def __init__(self, encoder: TextEncoder, config: CQLConfig, seed: int = 0):
        super().__init__(encoder, config, seed)
        self.cql_coef = config.cql_coef

    def update(self, batch: Sequence[OfflineTransition]) -> dict[str, float]:
        """One gradient step on the CQL loss; then the soft target update."""
        next_pairs = [(t.next_state, t.next_actions) for t in batch]
        with torch.no_grad():  # Q of every candidate at every s' in one forward pass per network
            q_next = self._q_all(self.target, next_pairs)
            q_next_online = self._q_all(self.online, next_pairs) if self.config.double_dqn else None
        rewards = torch.tensor([t.reward for t in batch], dtype=torch.float32)
        terminated = torch.tensor([t.terminated for t in batch])
        targets = td_targets(rewards, terminated, next_state_values(q_next, q_next_online), self.config.gamma)
        q_candidates, mask = pad(self._q_all(self.online, [(t.state, t.actions) for t in batch]))
        data = torch.tensor([t.actions.index(t.action) for t in batch])
        q_data = q_candidates[torch.arange(len(batch)), data]
        total, td, cql = cql_loss(q_data, q_candidates, mask, targets, self.cql_coef)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.online.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        self._update_target()
        return {"loss": float(total.detach()), "loss_td": float(td.detach()), "loss_cql": float(cql.detach()),
                "q_data": float(q_data.detach().mean()), "grad_norm": float(grad_norm)}

    def _q_all(self, network: nn.Module, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[torch.Tensor]:
        """Q of each (state, actions) pair's actions, one forward pass for all: a list of [len(actions)]."""
        flat = [(state, action) for state, actions in pairs for action in actions]
        return list(network(self.features(flat)).squeeze(-1).split([len(a) for _, a in pairs]))
