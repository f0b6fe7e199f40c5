"""PPO with the real bundled model: rollouts from the env runner, updates that learn."""
from __future__ import annotations

import pytest
import torch

from actors.env_runner import EnvRunner, RunnerConfig
from learners.ppo.config import PPOConfig
from learners.ppo.learner import PPOLearner
from policies.config import BackendConfig, LoraConfig
from policies.llm_policy import LLMPolicy
from policies.value_head import ValueHeadConfig

CHOICE = "llmrl/TextChoice-v0"


def rewarded_probability(policy: LLMPolicy, runner: EnvRunner) -> float:
    prompt = runner.builders[0].render()
    scores = torch.tensor(policy.score([prompt], [runner.candidates[0]]).logprobs[0])
    return torch.softmax(scores, 0)[runner.envs[0].unwrapped.rewarded].item()


def test_runner_records_consistent_rollouts():
    policy = LLMPolicy(BackendConfig(), ValueHeadConfig(hidden_sizes=(16,)))
    runner = EnvRunner(RunnerConfig(env_id="llmrl/BabyAI-GoToRedBall-v0", num_envs=2, seed=3), policy)
    rollout = runner.rollout(3)
    assert rollout.actions.shape == (3, 2) and rollout.num_steps == 6
    assert len(rollout.prompts) == 3 and all(p.endswith(":") for p in rollout.flat("prompts"))
    assert rollout.flat("candidates")[0] == [" turn left", " turn right", " go forward", " pick up", " drop", " toggle"]
    assert (rollout.logprobs <= 0).all() and (rollout.versions == 0).all()
    # the next step's prompt shows the action just taken
    first_action = rollout.candidates[0][0][int(rollout.actions[0, 0])].strip()
    assert f"Action 0: {first_action}" in rollout.prompts[1][0]
    # values: next_values[t] is values[t+1] where the episode goes on
    assert torch.allclose(rollout.next_values[0], rollout.values[1])


def test_runner_rejects_unknown_env():
    with pytest.raises(ValueError, match="registered text envs: .*llmrl/BabyAI-GoToLocal-v0"):
        EnvRunner(RunnerConfig(env_id="llmrl/Nope-v0"), scorer=None)


def test_ppo_raises_the_rewarded_action_probability():
    torch.manual_seed(0)
    policy = LLMPolicy(BackendConfig(lora=LoraConfig(r=8)), ValueHeadConfig(hidden_sizes=(64,)))
    runner = EnvRunner(RunnerConfig(env_id=CHOICE, num_envs=8, seed=0), policy)
    learner = PPOLearner(policy, PPOConfig(lr=2e-3, epochs=2, minibatch_size=16, micro_batch_size=16, gamma=1.0,
                                           gae_lambda=1.0, entropy_coef=0.0))
    before = rewarded_probability(policy, runner)
    weights_before = {k: v.clone() for k, v in policy.get_weights().items()}
    for _ in range(4):
        metrics = learner.update([runner.rollout(2)])
    after = rewarded_probability(policy, runner)
    assert learner.version == 4
    assert after > before + 0.2, (before, after)
    changed = [k for k, v in policy.get_weights().items() if not torch.equal(v, weights_before[k])]
    assert any("lora_" in k for k in changed) and any(k.startswith("value_head.") for k in changed)
    assert metrics["stale_steps"] == 0 and metrics["train_steps"] == 16


@pytest.mark.parametrize("source, clipped", [("rollout", 1.0), ("recompute", 0.0)])
def test_old_log_probs_come_from_the_rollout_or_the_learner(source, clipped):
    """Rollout log-probs one nat below the policy's make every ratio e (all clipped) when PPO uses
    them as the old policy; recomputed ones ignore them (ratio 1 in the single first minibatch)."""
    torch.manual_seed(0)
    policy = LLMPolicy(BackendConfig(lora=LoraConfig(r=4)), ValueHeadConfig(hidden_sizes=(16,)))
    rollout = EnvRunner(RunnerConfig(env_id=CHOICE, num_envs=4, seed=0), policy).rollout(2)
    rollout.logprobs -= 1.0
    learner = PPOLearner(policy, PPOConfig(lr=1e-3, epochs=1, minibatch_size=8, old_logprobs=source))
    metrics = learner.update([rollout])
    assert metrics["clip_fraction"] == pytest.approx(clipped)
