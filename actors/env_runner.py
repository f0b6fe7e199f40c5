"""EnvRunner: steps a vector of text envs, asks the scorer for all of them at once, samples actions.

It owns its envs and their RNG and never owns model weights: the scorer (a ScorerPool, its
Ray actor through RemoteScorer, or an in-process LLMPolicy) answers with the log-probs of
each env's candidate actions, the value of its prompt and the weights version used.

Its state is plain JSON-able data (`state()`; `EnvRunner(..., state=...)` continues from it): the
sampling RNG's state and, per env, the episode number, the actions taken
since that episode's reset and the env's step count. Every episode starts from an explicit reset seed
(`episode_seed`), and the envs are deterministic given it, so replaying the actions restores each env
and its prompt exactly, without pickling an env.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import gymnasium
import numpy as np
import torch

from cluster.config import check_range
from envs.prompt import PromptBuilder
from learners.rollout import Episode, Rollout
from policies.action_distribution import sample_action


@dataclass(frozen=True)
class RunnerConfig:
    """The envs one runner steps."""

    env_id: str = "llmrl/BabyAI-GoToRedBall-v0"
    """A registered text env id (see envs.ENV_IDS)."""
    num_envs: int = 2
    """Envs stepped in lockstep; one scoring request per step covers all of them."""
    env_kwargs: dict = field(default_factory=dict)
    """Keyword arguments for gymnasium.make (e.g. reward_scale)."""
    memory: int = 3
    """Observations kept in the prompt (and memory - 1 actions)."""
    seed: int = 0
    """Seeds the envs' resets (episode_seed) and the action sampling."""
    greedy: bool = False
    """Take the highest-scoring action (evaluation) instead of sampling from the softmax."""
    temperature: float = 1.0
    """The policy is softmax(scores / temperature) over the candidates, in acting and in PPO's loss (a GLAM
    learner reads this field too); 1: GLAM's. Above 1 flattens a peaked zero-shot policy, so it explores."""

    def __post_init__(self):
        check_range(self, "num_envs", "memory", ge=1)
        check_range(self, "temperature", gt=0)


def episode_seed(seed: int, runner: int, env: int, episode: int) -> int:
    """The reset seed of episode `episode` (0, 1, ...) of env `env` of runner `runner` in a run seeded `seed`."""
    return int(np.random.SeedSequence([seed, runner, env, episode]).generate_state(1)[0])


def check_state(config: RunnerConfig, state: dict) -> None:
    """ValueError unless `state` (EnvRunner.state()) fits a runner of `config`."""
    if len(state["envs"]) != config.num_envs:
        raise ValueError(f"runner state holds {len(state['envs'])} envs but runner.num_envs is {config.num_envs}; "
                         "resume with the num_envs the run was started with")


def make_text_env(env_id: str, **kwargs) -> gymnasium.Env:
    """gymnasium.make for our text envs, with an error listing the ids when the id is unknown."""
    import envs  # registers the llmrl/ ids

    try:
        return gymnasium.make(env_id, **kwargs)
    except gymnasium.error.Error as e:
        raise ValueError(f"cannot make env {env_id!r} ({e}); registered text envs: {', '.join(envs.registered_ids())}") from e


class EnvRunner:
    """Collects rollouts from `num_envs` text envs with actions sampled from the LLM policy.

    `state`: what `state()` returned (of a runner of the same config and index): continue from it."""

    def __init__(self, config: RunnerConfig, scorer, index: int = 0, state: dict | None = None):
        self.config = config
        self.scorer = scorer
        self.index = index
        self.rng = np.random.default_rng([config.seed, index])
        self.envs = [make_text_env(config.env_id, **config.env_kwargs) for _ in range(config.num_envs)]
        self.builders = [PromptBuilder((), memory=config.memory) for _ in self.envs]
        self.candidates: list[list[str]] = [[] for _ in self.envs]
        self.episode = [0] * config.num_envs
        """Per env: the number of its current episode (which picks its reset seed)."""
        self.taken: list[list[int]] = [[] for _ in self.envs]
        """Per env: the actions taken since its current episode's reset."""
        self.steps = [0] * config.num_envs
        """Per env: steps taken so far (the id of its next step)."""
        self.episode_return = [0.0] * config.num_envs
        self.episode_length = [0] * config.num_envs
        if state is not None:
            self._load(state)
        else:
            for n in range(len(self.envs)):
                self._reset_env(n)

    def state(self) -> dict:
        """The runner's state as JSON-able data (see the module docstring)."""
        return {"rng": self.rng.bit_generator.state,
                "envs": [{"episode": e, "actions": list(a), "steps": s}
                         for e, a, s in zip(self.episode, self.taken, self.steps)]}

    def _load(self, state: dict) -> None:
        """Continue from `state()`: reset each env with its episode's seed and replay the actions taken since."""
        check_state(self.config, state)
        self.rng.bit_generator.state = state["rng"]
        for n, env_state in enumerate(state["envs"]):
            self.episode[n] = int(env_state["episode"])
            self._reset_env(n)
            for action in env_state["actions"]:
                self._step_env(n, int(action))
            self.steps[n] = int(env_state["steps"])

    def collect(self, num_steps: int) -> tuple[Rollout, dict]:
        """A rollout of num_steps steps per env and the runner's state after it."""
        return self.rollout(num_steps), self.state()

    def rollout(self, num_steps: int) -> Rollout:
        """Step every env num_steps times; one batched scoring request per step, one for the bootstraps."""
        timers = {"scoring": 0.0, "env_step": 0.0}
        start_steps = list(self.steps)
        columns: dict[str, list] = {k: [] for k in (
            "prompts", "candidates", "actions", "logprobs", "values", "rewards", "terminated", "truncated", "versions")}
        episodes: list[Episode] = []
        cut: dict[tuple[int, int], tuple[str, list[str]]] = {}
        """(step, env) -> the final prompt and candidates of an episode cut there by the time limit."""
        for t in range(num_steps):
            start = time.perf_counter()
            prompts, candidates, answer = self._score_all(with_values=True)
            timers["scoring"] += time.perf_counter() - start
            actions, logps = self._sample_all(answer.logprobs)
            start = time.perf_counter()
            rewards, terminated, truncated, final_prompts = self._step_all(actions, episodes)
            timers["env_step"] += time.perf_counter() - start
            for n in range(len(self.envs)):
                if truncated[n] and not terminated[n]:
                    cut[(t, n)] = (final_prompts[n], candidates[n])
            for row, value in (("prompts", prompts), ("candidates", candidates), ("actions", actions),
                               ("logprobs", logps), ("values", answer.values), ("rewards", rewards),
                               ("terminated", terminated), ("truncated", truncated), ("versions", answer.versions)):
                columns[row].append(list(value))
        start = time.perf_counter()
        columns["next_values"] = self._next_values(columns, cut)
        timers["scoring"] += time.perf_counter() - start
        tensors = {k: torch.tensor(columns[k], dtype=dtype) for k, dtype in (
            ("actions", torch.long), ("logprobs", torch.float32), ("values", torch.float32),
            ("rewards", torch.float32), ("terminated", torch.bool), ("truncated", torch.bool),
            ("next_values", torch.float32), ("versions", torch.long))}
        return Rollout(prompts=columns["prompts"], candidates=columns["candidates"], episodes=episodes,
                       timers=timers, runner=self.index, start_steps=start_steps, **tensors)

    def play(self, num_episodes: int) -> list[Episode]:
        """Evaluation: env n plays a fixed quota of episodes (num_episodes split evenly, the first envs one
        more), so short episodes are not over-counted, as taking the first num_episodes to end from all
        envs would (successes end first). One scoring request per step for the envs still playing, no
        values and no bootstrap. Returns env 0's episodes, then env 1's, ..."""
        quotas = [num_episodes // len(self.envs) + (n < num_episodes % len(self.envs)) for n in range(len(self.envs))]
        played: list[list[Episode]] = [[] for _ in self.envs]
        while playing := [n for n, quota in enumerate(quotas) if len(played[n]) < quota]:
            _, _, answer = self._score_all(with_values=False, envs=playing)
            actions, _ = self._sample_all(answer.logprobs)
            for n, action in zip(playing, actions):
                episode = self._step_env(n, int(action))[-1]
                if episode is not None:
                    played[n].append(episode)
        return [episode for episodes in played for episode in episodes]

    def _score_all(self, with_values: bool, envs: Sequence[int] | None = None):
        """(prompts, candidates, scorer answer): the current prompt of every env (or of `envs`) scored in one
        request."""
        envs = range(len(self.envs)) if envs is None else envs
        prompts = [self.builders[n].render() for n in envs]
        candidates = [list(self.candidates[n]) for n in envs]
        return prompts, candidates, self.scorer.score(prompts, candidates, with_values=with_values)

    def _sample_all(self, logprobs: list[list[float]]) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """An action and its log-probability for each env, from its candidates' scores."""
        actions, logps = zip(*(sample_action(scores, self.rng, self.config.greedy, self.config.temperature)
                                   for scores in logprobs))
        return actions, logps

    def _step_all(self, actions, episodes: list[Episode]):
        """Step every env; record finished episodes. Returns per-env results and final prompts."""
        results = [self._step_env(n, int(action)) for n, action in enumerate(actions)]
        episodes.extend(episode for *_, episode in results if episode is not None)
        rewards, terminated, truncated, final_prompts, _ = (list(column) for column in zip(*results))
        return rewards, terminated, truncated, final_prompts

    def _step_env(self, n: int, action: int) -> tuple[float, bool, bool, str, Episode | None]:
        """Step env n (resetting it when its episode ends): reward, terminated, truncated, the prompt after
        the step, and the finished episode or None."""
        _, reward, term, trunc, info = self.envs[n].step(action)
        self.builders[n].step(action, info["descriptions"])
        self._set_actions(n, info["actions"])  # admissible actions may change every step (TextWorld)
        self.episode_return[n] += float(reward)
        self.episode_length[n] += 1
        self.taken[n].append(action)
        self.steps[n] += 1
        final_prompt = self.builders[n].render()
        episode = None
        if term or trunc:
            episode = Episode(ret=self.episode_return[n], length=self.episode_length[n],
                              success=bool(term and reward > 0))
            self.episode[n] += 1
            self._reset_env(n)
        return float(reward), bool(term), bool(trunc), final_prompt, episode

    def _reset_env(self, n: int) -> None:
        """Start env n's current episode from its seed."""
        _, info = self.envs[n].reset(seed=episode_seed(self.config.seed, self.index, n, self.episode[n]))
        self.builders[n].reset(info["mission"], info["descriptions"])
        self._set_actions(n, info["actions"])
        self.episode_return[n], self.episode_length[n] = 0.0, 0
        self.taken[n] = []

    def _set_actions(self, n: int, actions) -> None:
        """Env n's admissible actions: the candidates scored next, and the prompt's action list."""
        if not actions:
            raise ValueError(f"env {self.config.env_id} offered no admissible action; a text env must list at least one")
        self.builders[n].actions = tuple(actions)
        self.candidates[n] = [" " + a for a in actions]

    def _next_values(self, columns: dict[str, list], cut: dict[tuple[int, int], tuple[str, list[str]]]) -> list:
        """V of the observation after each step, the one place bootstrap values come from: 0 after a
        termination; after a time-limit cut, the value of the cut episode's final prompt; otherwise the
        next step's value, and after the last step the value of the envs' current prompts. The cut and
        current prompts are scored in one request."""
        tail = [(b.render(), list(c)) for b, c in zip(self.builders, self.candidates)]
        asked = list(cut.values()) + tail
        values = self.scorer.score([p for p, _ in asked], [c for _, c in asked], with_values=True).values
        cut_values = dict(zip(cut, values))
        following_last = values[len(cut):]
        steps = len(columns["values"])
        next_values = []
        for t in range(steps):
            following = columns["values"][t + 1] if t + 1 < steps else following_last
            next_values.append([0.0 if columns["terminated"][t][n] else cut_values.get((t, n), following[n])
                                for n in range(len(self.envs))])
        return next_values
