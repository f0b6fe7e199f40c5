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


def learn_textchoice(dtype: str) -> tuple[float, float]:
    """Four PPO updates (LoRA) on TextChoice; the rewarded action's probability before and after."""
    torch.manual_seed(0)
    policy = LLMPolicy(BackendConfig(dtype=dtype, lora=LoraConfig(r=8)), ValueHeadConfig(hidden_sizes=(64,)))
    # banana is rewarded: the bundled model gives it p ~ 0.05 (apple ~ 0.92), so the first rollouts find it
    runner = EnvRunner(RunnerConfig(env_id=CHOICE, num_envs=8, seed=0, env_kwargs={"rewarded": 1}), policy)
    learner = PPOLearner(policy, PPOConfig(lr=2e-3, epochs=2, minibatch_size=16, micro_batch_size=16, gamma=1.0,
                                           gae_lambda=1.0, entropy_coef=0.0))
    before = rewarded_probability(policy, runner)
    weights_before = {k: v.clone() for k, v in policy.get_weights().items()}
    for _ in range(4):
        metrics = learner.update([runner.rollout(2)])
    assert learner.version == 4
    changed = [k for k, v in policy.get_weights().items() if not torch.equal(v, weights_before[k])]
    assert any("lora_" in k for k in changed) and any(k.startswith("value_head.") for k in changed)
    assert all(v.dtype == torch.float32 for v in policy.get_weights().values())  # float32 master weights
    assert metrics["stale_steps"] == 0 and metrics["train_steps"] == 16
    return before, rewarded_probability(policy, runner)


def test_ppo_raises_the_rewarded_action_probability_in_float32_and_in_bf16_alike():
    before32, after32 = learn_textchoice("float32")
    before16, after16 = learn_textchoice("bfloat16")
    assert after32 > before32 + 0.2, (before32, after32)
    assert after16 > before16 + 0.2, (before16, after16)
    assert abs(after16 - after32) < 0.1, (after32, after16)


def test_at_a_temperature_runner_and_learner_agree_on_the_policy():
    """runner.temperature reaches the learner: the log-probs the runner sampled with are the learner's."""
    config = BackendConfig(dtype="float32", lora=LoraConfig(r=4))
    policy = LLMPolicy(config, ValueHeadConfig(hidden_sizes=(16,)))
    runner = RunnerConfig(env_id="llmrl/BabyAI-GoToRedBall-v0", num_envs=2, seed=0, temperature=3.0)
    rollout = EnvRunner(runner, policy).rollout(2)
    hot, cold = PPOLearner(policy, PPOConfig(), temperature=3.0), PPOLearner(policy, PPOConfig())
    batch = hot.batch_from([rollout])
    assert torch.allclose(hot.evaluate(batch)[0].detach(), batch.old_logprobs, atol=1e-5)
    assert not torch.allclose(cold.evaluate(batch)[0].detach(), batch.old_logprobs, atol=1e-2)


def test_in_bf16_the_learner_recomputes_the_rollout_scores_exactly():
    """The scorer (a frozen copy, as in a worker) and the learner's forward (trainable, autograd on) run the same
    mixed-precision code, so every candidate score is bitwise the same and PPO's first ratio is 1 up to the float
    rounding of the two log-softmax paths: old log-probs from the rollout need no recompute."""
    config = BackendConfig(dtype="bfloat16", lora=LoraConfig(r=4))
    scorer, trained = LLMPolicy(config, ValueHeadConfig(hidden_sizes=(16,))), LLMPolicy(config, ValueHeadConfig(hidden_sizes=(16,)))
    scorer.freeze()
    rollout = EnvRunner(RunnerConfig(env_id="llmrl/BabyAI-GoToRedBall-v0", num_envs=2, seed=0), scorer).rollout(3)
    learner = PPOLearner(trained, PPOConfig(micro_batch_size=4))
    batch = learner.batch_from([rollout])
    trained.train(True)
    pairs, _ = trained.evaluate(trained.encode(batch.prompts, batch.candidates))
    served = scorer.score(batch.prompts, batch.candidates).logprobs
    assert pairs.sums.tolist() == [s for row in served for s in row]
    logp, _, values = learner.evaluate(batch)
    assert torch.allclose(logp.detach(), batch.old_logprobs, atol=1e-5)
    assert torch.allclose(values.detach(), batch.old_values, atol=1e-5)
