"""PPO for an LLM policy over text actions (GLAM): GAE, clipped policy and value losses, entropy
bonus, optionally beta * KL to the frozen LLM (ppo.kl_prior), gradient clipping, epochs of minibatches
that recompute log-probs and values."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from learners.ppo.config import PPOConfig
from learners.ppo.ppo_math import gae, normalize, ppo_loss, prior_kl, sampled_prior_kl
from learners.rollout import Rollout
from learners.sequence_ledger import SequenceLedger
from learners.state_io import load_state, save_state
from policies.action_distribution import candidate_log_policy, entropy
from policies.config import BackendConfig
from policies.llm_policy import LLMPolicy
from policies.transformers_backend import set_torch_threads
from policies.value_head import ValueHeadConfig


@dataclass
class Batch:
    """Flattened training steps."""

    prompts: list[str]
    candidates: list[list[str]]
    actions: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    old_values: torch.Tensor
    old_logprobs: torch.Tensor
    prior: torch.Tensor | None = None
    """log p_LLM over each step's candidates [N, K] (padding -inf), with ppo.kl_prior."""
    prior_samples: torch.Tensor | None = None
    """Candidate indices drawn from the prior [N, k], for the sampled KL estimator."""

    def __len__(self) -> int:
        return len(self.prompts)

    def select(self, index: Sequence[int]) -> "Batch":
        idx = torch.as_tensor(list(index), dtype=torch.long)
        rows = [None if t is None else t[idx] for t in (self.prior, self.prior_samples)]
        if rows[0] is not None:  # as wide as these steps' longest candidate list
            rows[0] = rows[0][:, :max(len(self.candidates[i]) for i in index)]
        return Batch([self.prompts[i] for i in index], [self.candidates[i] for i in index], self.actions[idx],
                     self.advantages[idx], self.returns[idx], self.old_values[idx], self.old_logprobs[idx], *rows)


_LOSS_METRICS = {"total": "loss_total", "policy": "loss_policy", "value": "loss_value", "entropy": "entropy",
                 "approx_kl": "approx_kl", "clip_fraction": "clip_fraction"}


class PPOLearner:
    """Owns the trainable policy and its optimizer; `update` consumes rollouts, bumps the version."""

    def __init__(self, policy: LLMPolicy, config: PPOConfig, seed: int = 0, temperature: float = 1.0):
        if policy.value_head is None:
            raise ValueError("PPO needs a value head: configure value_head for the policy")
        if getattr(policy.backend, "compute_dtype", None) is torch.float16:
            raise ValueError("backend.dtype float16 cannot train: its gradients underflow without loss scaling, "
                             "which llmrl does not do; use bfloat16 (mixed precision) or float32")
        self.policy = policy
        self.config = config
        self.temperature = temperature
        """The policy is softmax(scores / temperature) (runner.temperature: the runners act with the same)."""
        if config.kl_prior.beta > 0:
            policy.keep_prior()  # full fine-tuning: a frozen copy of the pretrained weights; LoRA: nothing
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, betas=config.betas, eps=config.adam_eps)
        self.generator = torch.Generator().manual_seed(seed)
        self.stale_steps = 0
        self.dropped_steps = 0
        self.last_policy_lag = 0.0
        """Mean versions between the policy that acted and the learner, over the last batch."""
        self.ledger = SequenceLedger()
        """Checks each runner's and env's step ids: transitions lost or received twice."""

    @classmethod
    def build(cls, backend: BackendConfig, value_head: ValueHeadConfig, config: PPOConfig, seed: int = 0,
              threads: int = 0, temperature: float = 1.0) -> "PPOLearner":
        """A learner with a fresh policy, built where it will run (a learner actor builds its own model)."""
        policy = LLMPolicy(backend, value_head)
        set_torch_threads(threads)
        return cls(policy, config, seed, temperature)

    @property
    def version(self) -> int:
        return self.policy.version

    def get_weights(self) -> dict[str, torch.Tensor]:
        return self.policy.get_weights()

    def save(self, directory: Path) -> None:
        """Policy weights (the adapter with LoRA) and value head, optimizer, minibatch RNG and counters."""
        save_state(directory, "policy", {"version": self.version, "weights": self.policy.get_weights()})
        save_state(directory, "learner", {
            "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
            "stale_steps": self.stale_steps, "dropped_steps": self.dropped_steps, "ledger": self.ledger.state()})

    def restore(self, directory: Path) -> None:
        """Continue from what `save` wrote."""
        load_policy(self.policy, directory)
        state = load_state(directory, "learner")
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the config's hyperparameters win (resume --set, PBT)
            group.update(lr=self.config.lr, betas=self.config.betas, eps=self.config.adam_eps)
        self.generator.set_state(state["generator"])
        self.stale_steps, self.dropped_steps = state["stale_steps"], state["dropped_steps"]
        self.ledger = SequenceLedger(state.get("ledger"))  # absent in checkpoints written before it

    def batch_from(self, rollouts: Sequence[Rollout]) -> Batch:
        """GAE per rollout, then all steps flattened (stale ones counted, dropped if configured)."""
        parts = []
        c = self.config
        lags = torch.cat([(self.version - r.versions).reshape(-1).float() for r in rollouts])
        self.last_policy_lag = float(lags.mean()) if len(lags) else 0.0
        for r in rollouts:
            advantages, returns = gae(r.rewards, r.values, r.next_values, r.terminated, r.terminated | r.truncated,
                                      c.gamma, c.gae_lambda)
            stale = (self.version - r.versions) > c.max_policy_lag
            self.stale_steps += int(stale.sum())
            keep = ~stale.reshape(-1) if c.drop_stale else torch.ones(r.actions.numel(), dtype=torch.bool)
            self.dropped_steps += int((~keep).sum())
            index = keep.nonzero().squeeze(1).tolist()
            prompts, candidates = r.flat("prompts"), r.flat("candidates")
            parts.append(Batch([prompts[i] for i in index], [candidates[i] for i in index],
                               r.actions.reshape(-1)[index], advantages.reshape(-1)[index],
                               returns.reshape(-1)[index], r.values.reshape(-1)[index],
                               r.logprobs.reshape(-1)[index]))
        return Batch([p for b in parts for p in b.prompts], [x for b in parts for x in b.candidates],
                     *(torch.cat([getattr(b, f) for b in parts]) for f in ("actions", "advantages", "returns",
                                                                           "old_values", "old_logprobs")))

    def evaluate(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log pi(action), entropy and value for each step of `batch` (differentiable)."""
        log_policy, mask, values = self.log_policy(batch)
        return _chosen(log_policy, batch.actions).cpu(), entropy(log_policy, mask).cpu(), values

    def log_policy(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log pi over each step's candidates [B, K] (padding -inf) and its mask [B, K], on the policy's device,
        and the values [B] on the CPU (differentiable)."""
        request = self.policy.encode(batch.prompts, batch.candidates)
        pairs, values = self.policy.evaluate(request)
        log_policy, mask = _log_policy_rows(pairs.sums, batch.candidates, self.temperature)
        return log_policy, mask, values.float().cpu()

    def prior_log_policy(self, batch: Batch) -> torch.Tensor:
        """log p_LLM over each step's candidates [N, K] (padding -inf): the frozen LLM's scores through the
        policy's softmax, without gradient, micro-batch by micro-batch. Call in evaluation mode."""
        widest = max(len(c) for c in batch.candidates)
        parts = []
        for micro in self._micro_batches(batch):
            sums = self.policy.prior_scores(self.policy.encode(micro.prompts, micro.candidates)).sums
            log_prior, _ = _log_policy_rows(sums, micro.candidates)
            parts.append(torch.nn.functional.pad(log_prior.cpu(), (0, widest - log_prior.shape[1]),
                                                 value=float("-inf")))
        return torch.cat(parts)

    def _micro_batches(self, batch: Batch):
        size = self.config.micro_batch_size
        for start in range(0, len(batch), size):
            yield batch.select(range(start, min(start + size, len(batch))))

    def update(self, rollouts: Sequence[Rollout]) -> dict[str, float]:
        """PPO epochs over the rollouts; returns metrics. The policy's version goes up by one."""
        c = self.config
        self._check_sequences(rollouts)
        batch = self.batch_from(rollouts)
        counts = {"stale_steps": float(self.stale_steps), "dropped_steps": float(self.dropped_steps),
                  "lost_transitions": float(self.ledger.lost), "duplicated_transitions": float(self.ledger.duplicated)}
        if len(batch) == 0:
            return counts
        old_logp = batch.old_logprobs
        self.policy.train(False)
        if c.old_logprobs == "recompute":
            with torch.no_grad():
                old_logp = torch.cat([self.evaluate(m)[0] for m in self._micro_batches(batch)])
        if c.kl_prior.beta > 0:  # once per batch: the prior does not change over the epochs
            batch.prior = self.prior_log_policy(batch)
            if c.kl_prior.estimator == "sampled":
                batch.prior_samples = torch.multinomial(batch.prior.exp(), c.kl_prior.samples, replacement=True,
                                                        generator=self.generator)
        sums: dict[str, float] = {}
        updates = 0
        self.policy.train(True)
        for _ in range(c.epochs):
            order = torch.randperm(len(batch), generator=self.generator).tolist()
            for start in range(0, len(batch), c.minibatch_size):
                index = order[start:start + c.minibatch_size]
                self._minibatch_step(batch.select(index), old_logp[index], sums)
                updates += 1
        self.policy.train(False)
        self.policy.next_version()
        metrics = {k: v / updates for k, v in sums.items()}
        metrics.update(counts, policy_lag=self.last_policy_lag,
                       train_steps=float(len(batch)),
                       explained_variance=_explained_variance(batch.old_values, batch.returns))
        return metrics

    def _check_sequences(self, rollouts: Sequence[Rollout]) -> None:
        """Record each rollout's step range per env in the ledger (lost / duplicated transitions)."""
        for r in rollouts:
            for env, start in enumerate(r.start_steps):
                self.ledger.record(r.runner, env, start, r.actions.shape[0])

    def _minibatch_step(self, minibatch: Batch, old_logp: torch.Tensor, sums: dict[str, float]) -> None:
        c = self.config
        advantages = normalize(minibatch.advantages) if c.normalize_advantages else minibatch.advantages
        self.optimizer.zero_grad(set_to_none=True)
        start = 0
        for micro in self._micro_batches(minibatch):
            end = start + len(micro)
            log_policy, mask, values = self.log_policy(micro)
            kl, term = self._prior_kl(micro, log_policy, mask)
            loss = ppo_loss(_chosen(log_policy, micro.actions).cpu(), old_logp[start:end], advantages[start:end],
                            values, micro.old_values, micro.returns, entropy(log_policy, mask).cpu(), clip=c.clip,
                            value_clip=c.value_clip, value_coef=c.value_coef, entropy_coef=c.entropy_coef,
                            prior_kl=term, prior_coef=c.kl_prior.beta)
            (loss.total * len(micro) / len(minibatch)).backward()
            share = len(micro) / len(minibatch)
            for attr, key in _LOSS_METRICS.items():
                sums[key] = sums.get(key, 0.0) + share * float(getattr(loss, attr).detach())
            if kl is not None:
                sums["kl_prior"] = sums.get("kl_prior", 0.0) + share * float(kl.detach().mean())
                sums["loss_kl_prior"] = sums.get("loss_kl_prior", 0.0) + share * float(loss.prior_kl.detach())
            start = end
        grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), c.max_grad_norm)
        sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(grad_norm)
        self.optimizer.step()

    def _prior_kl(self, micro: Batch, log_policy: torch.Tensor,
                  mask: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The exact KL to the prior per step (for the `kl_prior` metric) and the term the loss uses (the
        exact KL, or the sampled estimate), on the CPU; (None, None) without ppo.kl_prior."""
        kp = self.config.kl_prior
        if kp.beta == 0:
            return None, None
        kl = prior_kl(log_policy, micro.prior.to(log_policy.device), mask, kp.direction).cpu()
        return kl, kl if kp.estimator == "exact" else sampled_prior_kl(log_policy, micro.prior_samples).cpu()


def _log_policy_rows(sums: torch.Tensor, candidates: Sequence[Sequence[str]],
                     temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat per-pair scores (each step's candidates in turn) to log pi [B, K] and its mask [B, K]."""
    widest = max(len(c) for c in candidates)
    scores = torch.zeros(len(candidates), widest, device=sums.device)
    mask = torch.zeros(len(candidates), widest, dtype=torch.bool, device=sums.device)
    start = 0
    for i, cands in enumerate(candidates):
        scores[i, : len(cands)] = sums[start:start + len(cands)]
        mask[i, : len(cands)] = True
        start += len(cands)
    return candidate_log_policy(scores, mask, temperature), mask


def _chosen(log_policy: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi of each step's action [B] from log pi over its candidates [B, K]."""
    return log_policy.gather(1, actions.to(log_policy.device)[:, None]).squeeze(1)


def load_policy(policy: LLMPolicy, directory: Path) -> None:
    """Load the policy weights (and their version) a PPOLearner saved in `directory`."""
    state = load_state(directory, "policy")
    policy.load_weights(state["weights"], state["version"])


def _explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var(target - predicted) / Var(target); nan when the target is constant."""
    var = target.var(unbiased=False)
    return float("nan") if var == 0 else float(1 - (target - predicted).var(unbiased=False) / var)
