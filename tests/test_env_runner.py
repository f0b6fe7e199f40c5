"""EnvRunner.play (evaluation): one scoring request per env step, no value or bootstrap requests."""
from actors.env_runner import EnvRunner, RunnerConfig
from cluster.eval_command import UniformScorer


class CountingScorer(UniformScorer):
    def __init__(self):
        self.requests = []

    def score(self, contexts, candidates, **kwargs):
        self.requests.append(kwargs)
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
