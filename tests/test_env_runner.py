"""EnvRunner.play (evaluation): one scoring request per env step, no value or bootstrap requests."""
from actors.env_runner import EnvRunner, RunnerConfig
from cluster.eval_command import UniformScorer


class CountingScorer(UniformScorer):
    """Records each request's keyword arguments and how many contexts it held."""

    def __init__(self):
        self.requests, self.contexts = [], []

    def score(self, contexts, candidates, **kwargs):
        self.requests.append(kwargs)
        self.contexts.append(len(contexts))
        return super().score(contexts, candidates)


def test_play_scores_once_per_step_and_never_asks_for_values():
    scorer = CountingScorer()
    runner = EnvRunner(RunnerConfig(env_id="llmrl/BabyAI-GoToRedBall-v0", num_envs=1, seed=1), scorer)
    episodes = runner.play(3)
    assert len(episodes) == 3
    assert len(scorer.requests) == sum(e.length for e in episodes)
    assert all(not r.get("with_values") for r in scorer.requests)


def test_play_returns_exactly_the_episodes_asked_for():
    scorer = CountingScorer()
    runner = EnvRunner(RunnerConfig(env_id="llmrl/TextChoice-v0", num_envs=4, seed=0), scorer)
    assert len(runner.play(5)) == 5  # 8 one-step episodes end in the 2 steps it takes
    assert len(scorer.requests) == 2


def test_play_gives_each_env_its_quota_so_short_episodes_are_not_over_counted():
    """4 episodes on 2 envs: 2 each (the first to end from either env would favour quick successes), and an env
    that has its quota is no longer scored."""
    scorer = CountingScorer()
    runner = EnvRunner(RunnerConfig(env_id="llmrl/BabyAI-GoToRedBall-v0", num_envs=2, seed=3,
                                    env_kwargs={"room_size": 5, "num_dists": 0}), scorer)
    episodes = runner.play(4)
    per_env = [episodes[0].length + episodes[1].length, episodes[2].length + episodes[3].length]
    assert len(episodes) == 4 and runner.episode == [2, 2]
    assert scorer.contexts == [2] * min(per_env) + [1] * (max(per_env) - min(per_env))
    assert len(EnvRunner(RunnerConfig(env_id="llmrl/TextChoice-v0", num_envs=4, seed=0), scorer).play(3)) == 3


class PromptHashScorer:
    """Deterministic scores that depend on the whole prompt, so a runner restored with a wrong prompt or
    env state would sample differently."""

    def score(self, contexts, candidates, **_):
        import zlib

        from policies.backend import ScoreResult

        return ScoreResult(logprobs=[[-(zlib.crc32((p + c).encode()) % 997) / 300 for c in cands]
                                     for p, cands in zip(contexts, candidates)],
                           versions=[0] * len(contexts), values=[len(p) / 100 for p in contexts])


def _same_rollouts(a, b):
    import torch

    assert (a.prompts, a.candidates, a.runner, a.start_steps) == (b.prompts, b.candidates, b.runner, b.start_steps)
    for name in ("actions", "logprobs", "values", "rewards", "terminated", "truncated", "next_values", "versions"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.episodes == b.episodes


def test_a_runner_restored_from_its_state_continues_exactly():
    import json

    config = RunnerConfig(env_id="llmrl/BabyAI-GoToRedBall-v0", num_envs=2, seed=5)
    runner = EnvRunner(config, PromptHashScorer(), index=1)
    initial = json.loads(json.dumps(runner.state()))  # plain JSON: what a checkpoint stores
    first, state = runner.collect(7)
    assert (first.runner, first.start_steps) == (1, [0, 0])
    assert [e["steps"] for e in state["envs"]] == [7, 7]
    assert any(e["actions"] for e in state["envs"])  # mid-episode: the replay has work to do
    restored = EnvRunner(config, PromptHashScorer(), index=1, state=json.loads(json.dumps(state)))
    _same_rollouts(restored.rollout(40), runner.rollout(40))  # long enough for episodes to end and restart
    assert restored.state() == runner.state()
    # A runner lost mid-rollout and rebuilt from the state before it redoes that same rollout.
    _same_rollouts(EnvRunner(config, PromptHashScorer(), index=1, state=initial).rollout(7), first)


def test_each_episode_resets_from_its_own_seed():
    from actors.env_runner import episode_seed

    config = RunnerConfig(env_id="llmrl/TextChoice-v0", num_envs=2, seed=3)
    runner = EnvRunner(config, PromptHashScorer())
    runner.rollout(3)  # one-step episodes: each env is on its 4th episode
    assert runner.episode == [3, 3] and runner.taken == [[], []]
    seeds = {episode_seed(3, r, n, k) for r in range(2) for n in range(2) for k in range(4)}
    assert len(seeds) == 16 and episode_seed(3, 0, 1, 2) == episode_seed(3, 0, 1, 2)


def test_a_state_of_another_size_is_refused():
    import pytest

    state = EnvRunner(RunnerConfig(env_id="llmrl/TextChoice-v0", num_envs=2), PromptHashScorer()).state()
    with pytest.raises(ValueError, match="runner state holds 2 envs but runner.num_envs is 3"):
        EnvRunner(RunnerConfig(env_id="llmrl/TextChoice-v0", num_envs=3), PromptHashScorer(), state=state)
