"""KL-regularised PPO toward the frozen LLM (ppo.kl_prior): the prior's scores (LoRA: the base model under the
adapter; full fine-tuning: a frozen copy), the pull toward it, and a GLAM run that logs it."""
from __future__ import annotations

import math

import pytest
import torch

from actors.env_runner import EnvRunner, RunnerConfig
from cluster.config import ConfigError, from_dict
from learners.ppo.config import KLPriorConfig, PPOConfig
from learners.ppo.learner import PPOLearner
from learners.ppo.ppo_math import prior_kl
from learners.ppo.run_config import RunConfig
from policies.config import BackendConfig, LoraConfig
from policies.llm_policy import LLMPolicy
from policies.value_head import ValueHeadConfig

CHOICE = "llmrl/TextChoice-v0"
CONTEXTS = ["Goal of the agent: go to the red ball\nAction 0:", "Goal of the agent: open the door\nAction 0:"]
CANDIDATES = [[" turn left", " go forward"], [" toggle", " drop", " pick up"]]


def base_sums(backend, request) -> list[float]:
    """The pretrained model's per-pair log-prob sums (the conftest's plain backend)."""
    with torch.no_grad():
        return backend.pair_scores(request).sums.tolist()


def test_config_checks_its_fields():
    assert PPOConfig().kl_prior == KLPriorConfig(beta=0.0, direction="reverse", estimator="exact")
    config = from_dict(RunConfig, {"ppo": {"kl_prior": {"beta": 0.5, "direction": "forward", "estimator": "sampled"}}})
    assert config.ppo.kl_prior.beta == 0.5 and config.ppo.kl_prior.samples == 5
    with pytest.raises(ConfigError, match="ppo.kl_prior.beta: -1.0 is not allowed; must be >= 0"):
        from_dict(RunConfig, {"ppo": {"kl_prior": {"beta": -1}}})
    with pytest.raises(ConfigError, match="ppo.kl_prior.direction: 'both' is not allowed"):
        from_dict(RunConfig, {"ppo": {"kl_prior": {"direction": "both"}}})
    with pytest.raises(ConfigError, match="ppo.kl_prior.estimator: 'sampled' .*set direction: forward"):
        from_dict(RunConfig, {"ppo": {"kl_prior": {"beta": 1, "estimator": "sampled"}}})
    with pytest.raises(ConfigError, match="ppo.kl_prior.samples: 0 is not allowed"):
        from_dict(RunConfig, {"ppo": {"kl_prior": {"samples": 0}}})


def test_lora_prior_is_the_base_model_before_and_after_an_update(backend):
    torch.manual_seed(0)
    policy = LLMPolicy(BackendConfig(dtype="float32", lora=LoraConfig(r=4)), ValueHeadConfig(hidden_sizes=(16,)))
    request = policy.encode(CONTEXTS, CANDIDATES)
    with torch.no_grad():
        before = policy.evaluate(request, with_values=False)[0].sums.tolist()
    prior = policy.prior_scores(request)
    assert not prior.sums.requires_grad
    assert prior.sums.tolist() == pytest.approx(before, abs=1e-5)  # LoRA starts as the identity (B = 0)
    assert prior.sums.tolist() == pytest.approx(base_sums(backend, request), abs=1e-5)
    # One PPO update with the KL term on: the adapter moves, the prior stays the base model.
    rollout = EnvRunner(RunnerConfig(env_id=CHOICE, num_envs=4, seed=0), policy).rollout(2)
    learner = PPOLearner(policy, PPOConfig(lr=5e-3, epochs=1, minibatch_size=8, kl_prior=KLPriorConfig(beta=0.1)))
    metrics = learner.update([rollout])
    assert math.isfinite(metrics["kl_prior"]) and metrics["kl_prior"] >= 0
    trainable = [n for n, p in policy.backend.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)  # the adapter is trainable again after the prior pass
    with torch.no_grad():
        after = policy.evaluate(request, with_values=False)[0].sums.tolist()
    assert max(abs(a - b) for a, b in zip(after, before)) > 1e-3
    assert policy.prior_scores(request).sums.tolist() == pytest.approx(base_sums(backend, request), abs=1e-5)


def test_full_fine_tuning_keeps_a_frozen_copy_only_when_asked(backend):
    policy = LLMPolicy(BackendConfig(dtype="float32"), ValueHeadConfig(hidden_sizes=(16,)))
    request = policy.encode(CONTEXTS, CANDIDATES)
    with pytest.raises(ValueError, match="needs keep_prior"):
        policy.prior_scores(request)
    PPOLearner(policy, PPOConfig(kl_prior=KLPriorConfig(beta=0.1)))  # keeps the copy
    frozen = policy._prior.model
    assert all(not p.requires_grad for p in frozen.parameters())
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(frozen.parameters(), policy.backend.model.parameters()))
    with torch.no_grad():  # stand-in for training the full model
        for p in policy.backend.model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        moved = policy.evaluate(request, with_values=False)[0].sums.tolist()
    assert max(abs(a - b) for a, b in zip(moved, base_sums(backend, request))) > 1e-2
    assert policy.prior_scores(request).sums.tolist() == pytest.approx(base_sums(backend, request), abs=1e-5)
    policy.next_version()
    other = LLMPolicy(BackendConfig(), ValueHeadConfig(hidden_sizes=(16,)))
    other.next_version()
    with pytest.raises(ValueError, match="the prior is the pretrained model"):
        other.keep_prior()


def mean_kl_to_prior(learner: PPOLearner, prompt: str, candidates: list[str]) -> float:
    """Exact reverse KL(pi || p_LLM) at one state."""
    request = learner.policy.encode([prompt], [candidates])
    with torch.no_grad():
        log_pi = torch.log_softmax(learner.policy.evaluate(request, with_values=False)[0].sums.float(), 0)
        log_p = torch.log_softmax(learner.policy.prior_scores(request).sums.float(), 0)
    mask = torch.ones(1, len(candidates), dtype=torch.bool)
    return float(prior_kl(log_pi[None], log_p[None], mask))


@pytest.mark.parametrize("direction, estimator", [("reverse", "exact"), ("forward", "sampled")])
def test_kl_prior_keeps_the_policy_near_the_prior(direction, estimator):
    """The same rollouts, PPO with beta 0 and with a large beta: after a few updates the policy is much nearer
    the prior with the KL term (exact reverse KL, or the sampled forward estimator)."""
    torch.manual_seed(0)
    policy = LLMPolicy(BackendConfig(lora=LoraConfig(r=4)), ValueHeadConfig(hidden_sizes=(16,)))
    runner = EnvRunner(RunnerConfig(env_id=CHOICE, num_envs=8, seed=0), policy)
    rollouts = [runner.rollout(1) for _ in range(3)]
    prompt, candidates = runner.builders[0].render(), runner.candidates[0]
    start = policy.get_weights()
    kl = {}
    for beta in (0.0, 10.0):
        policy.load_weights(start, version=0)
        prior = KLPriorConfig(beta=beta, direction=direction, estimator=estimator, samples=16)
        learner = PPOLearner(policy, PPOConfig(lr=2e-3, epochs=2, minibatch_size=8, micro_batch_size=8, gamma=1.0,
                                               gae_lambda=1.0, entropy_coef=0.0, old_logprobs="recompute",
                                               kl_prior=prior))
        for rollout in rollouts:
            metrics = learner.update([rollout])
        assert ("kl_prior" in metrics) == (beta > 0)
        kl[beta] = mean_kl_to_prior(learner, prompt, candidates)
    assert kl[10.0] < 0.5 * kl[0.0], kl


def test_glam_run_in_process_logs_kl_prior(tmp_path):
    from cluster.experiment import Experiment
    from cluster.metrics import read_metrics

    config = from_dict(RunConfig, {
        "method": "glam", "name": "tiny_prior", "use_ray": False, "backend": {"lora": {"r": 4}},
        "value_head": {"hidden_sizes": [16]}, "runner": {"env_id": CHOICE, "num_envs": 2},
        "ppo": {"lr": 1.0e-3, "epochs": 1, "minibatch_size": 8, "kl_prior": {"beta": 0.5}},
        "train": {"total_env_steps": 4, "steps_per_update": 2, "output_dir": str(tmp_path)}})
    rows = read_metrics(Experiment(config, progress=False).run())
    assert [r["updates"] for r in rows] == [1.0]
    assert all(math.isfinite(r["kl_prior"]) and r["kl_prior"] >= 0 for r in rows)
