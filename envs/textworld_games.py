"""TextWorld games: made offline by TextWorld's own challenge generators (those of `tw-make`), cached
on disk, played through TextWorld's gym API behind the runners' text-env interface.

Games live in `$LLMRL_CACHE/textworld/<textworld version>/<challenge>_<params>_seed<N>.z8` (+ .json),
made once under a file lock and reused. Importing this module (and registering the ids) does not
import TextWorld; making an env does, and generates its game when it is not cached (1-8 s).
"""
from __future__ import annotations

import argparse
import os
import re
import string
import tempfile
from pathlib import Path

import gymnasium
import numpy as np
from filelock import FileLock

PRESETS: dict[str, tuple[str, dict]] = {
    **{f"CoinCollector-L{n}": ("tw-coin_collector", {"level": n}) for n in (1, 5, 10)},
    **{f"TreasureHunter-L{n}": ("tw-treasure_hunter", {"level": n}) for n in (1, 10, 20, 30)},
    "Cooking-R1T1G1": ("tw-cooking", {"recipe": 1, "take": 1, "go": 1}),
    "Cooking-R2T2G6-Open": ("tw-cooking", {"recipe": 2, "take": 2, "go": 6, "open": True}),
    "Cooking-R3T3G9-OpenCookCut": ("tw-cooking", {"recipe": 3, "take": 3, "go": 9, "open": True, "cook": True,
                                                  "cut": True}),
}
"""Id name -> (TextWorld challenge, its settings as `tw-make` flags without dashes). Coin collector
levels 1-100: the quest (and room chain) length; treasure hunter 1-10 / 11-20 / 21-30: easy / medium /
hard; cooking: recipe ingredients, ingredients to take, rooms, and the skills needed."""
DEFAULT_HORIZON = 50


def textworld_env_id(name: str) -> str:
    """'llmrl/TextWorld-CoinCollector-L1-v0'."""
    return f"llmrl/TextWorld-{name}-v0"


TEXTWORLD_IDS = tuple(textworld_env_id(name) for name in PRESETS)


def register_textworld() -> None:
    """Register the PRESETS ids with Gymnasium (registered ids are left alone); generates nothing."""
    for name, (challenge, params) in PRESETS.items():
        if textworld_env_id(name) not in gymnasium.registry:
            gymnasium.register(id=textworld_env_id(name), entry_point="envs.textworld_games:TextWorldGame",
                               kwargs={"challenge": challenge, "params": params})


def settings_argv(params: dict) -> list[str]:
    """`tw-make` flags for settings: {"level": 1} -> ['--level', '1'], True -> a bare flag, False/None -> none."""
    argv = []
    for key, value in params.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not False and value is not None:
            argv += [flag, str(value)]
    return argv


def game_key(challenge: str, params: dict, seed: int) -> str:
    """The cache file stem: 'tw-cooking_go6_open_recipe2_take2_seed0' (settings sorted; False/None dropped)."""
    parts = [k if v is True else f"{k}{v}" for k, v in sorted(params.items()) if v is not False and v is not None]
    key = "_".join([challenge, *parts, f"seed{int(seed)}"])
    if not re.fullmatch(r"[\w.-]+", key):
        raise ValueError(f"settings {params!r} of {challenge!r} do not make a file name: {key!r}")
    return key


def game_dir() -> Path:
    """`$LLMRL_CACHE/textworld/<textworld version>` (LLMRL_CACHE as read by policies.models)."""
    import textworld

    from policies.models import cache_root

    return cache_root() / "textworld" / textworld.__version__


def generate_game(challenge: str, params: dict, seed: int) -> Path:
    """The .z8 file of a TextWorld challenge game: made once (under a file lock), then read from the cache."""
    folder = game_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{game_key(challenge, params, seed)}.z8"
    with FileLock(str(path) + ".lock"):
        if not (path.exists() and path.with_suffix(".json").exists()):
            _build(challenge, params, seed, path)
    return path


def _build(challenge: str, params: dict, seed: int, path: Path) -> None:
    """Generate and compile the game with TextWorld's challenge maker (as `tw-make` does), then move the
    .json and (last) the .z8 into place."""
    import textworld
    import textworld.challenges
    import textworld.generator

    if challenge not in textworld.challenges.CHALLENGES:
        known = ", ".join(textworld.challenges.CHALLENGES)
        raise ValueError(f"unknown TextWorld challenge {challenge!r}; known: {known}")
    _, make, add_arguments = textworld.challenges.CHALLENGES[challenge]
    parser = argparse.ArgumentParser(prog=challenge, add_help=False)
    add_arguments(parser)

    def error(message: str):
        raise ValueError(f"bad settings {params!r} for {challenge}: {message}; {parser.format_usage().strip()}")

    parser.error = error
    settings, unknown = parser.parse_known_args(settings_argv(params))
    if unknown:
        error(f"unrecognized arguments: {' '.join(unknown)}")
    options = textworld.GameOptions()
    options.seeds = int(seed)
    options.file_ext = ".z8"
    options.force_recompile = True
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        options.path = os.path.join(tmp, path.name)
        game = make(settings=vars(settings), options=options)
        made = Path(textworld.generator.compile_game(game, options))
        os.replace(made.with_suffix(".json"), path.with_suffix(".json"))
        os.replace(made, path)


_RESTART = "Would you like to RESTART, RESTORE a saved game, QUIT or UNDO the last command?"


def clean_observation(text: str) -> list[str]:
    """TextWorld's output as sentences: without the banner (ASCII art), rules and blank lines, the
    trailing '>' prompt with its status line, and the RESTART question after the end."""
    lines = text.split("\n")
    prompts = [i for i, line in enumerate(lines) if line.lstrip().startswith(">")]
    if prompts:
        lines = lines[:prompts[-1]]
    sentences = []
    for line in lines:
        line = " ".join(line.split())
        if line == _RESTART or not any(c.isalnum() for c in line):
            continue
        sentences += re.split(r"(?<=[.!?])\s+(?=\S)", line)
    return sentences


class TextWorldGame(gymnasium.Env):
    """One generated TextWorld game with the runners' text interface.

    info: "mission" (the game's objective), "descriptions" (the cleaned observation as sentences),
    "actions" (the admissible commands of the current state, sorted alphabetically), "won", "lost",
    "score", "max_score", "walkthrough" (TextWorld's winning command list; in cooking games it can hold
    a redundant command that is not admissible then, such as opening an open fridge: skip those), and at
    episode end "success" (= won). step takes an index into the current info["actions"] or one of those
    strings; anything else raises ValueError. Reward = score increase; terminated when won or lost;
    truncated after `horizon` steps. The observation is the descriptions joined by spaces.
    Games are deterministic: reset(seed=...) only seeds self.np_random, the game is fixed by game_seed.
    """

    def __init__(self, challenge: str, params: dict, game_seed: int = 0, horizon: int = DEFAULT_HORIZON):
        from textworld import EnvInfos
        from textworld.gym.envs import TextworldGymEnv

        self.challenge, self.params, self.game_seed, self.horizon = challenge, dict(params), int(game_seed), horizon
        self.game_file = generate_game(challenge, self.params, self.game_seed)
        infos = EnvInfos(admissible_commands=True, objective=True, max_score=True, won=True, lost=True,
                         score=True, extras=["walkthrough"])
        self._env = TextworldGymEnv([str(self.game_file)], request_infos=infos, max_episode_steps=None)
        self.observation_space = gymnasium.spaces.Text(max_length=100_000, charset=string.printable)
        self.action_space = gymnasium.spaces.Text(max_length=200, charset=string.printable)
        self._actions: list[str] = []
        self._score, self._steps, self._over = 0, 0, True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, tw_info = self._env.reset()
        self._score, self._steps, self._over = tw_info["score"], 0, False
        return self._text(obs, tw_info)

    def command(self, action: int | str) -> str:
        """The admissible command for an index into info["actions"] or a command string; ValueError else."""
        if isinstance(action, str) and action in self._actions:
            return action
        if isinstance(action, (int, np.integer)) and not isinstance(action, bool) and 0 <= action < len(self._actions):
            return self._actions[int(action)]
        allowed = ", ".join(repr(a) for a in self._actions)
        raise ValueError(f"invalid command {action!r}: use an index 0..{len(self._actions) - 1} or one of "
                         f"the admissible commands {allowed}")

    def step(self, action: int | str):
        if self._over:
            raise RuntimeError("the episode is over (or never began): call reset()")
        obs, score, done, tw_info = self._env.step(self.command(action))
        reward = float(score - self._score)
        self._score, self._steps = score, self._steps + 1
        terminated = bool(done or tw_info["won"] or tw_info["lost"])
        truncated = not terminated and self._steps >= self.horizon
        obs, info = self._text(obs, tw_info)
        if terminated or truncated:
            self._over = True
            info["success"] = bool(tw_info["won"])
        return obs, reward, terminated, truncated, info

    def _text(self, obs: str, tw_info: dict) -> tuple[str, dict]:
        self._actions = sorted(set(tw_info["admissible_commands"]))
        descriptions = clean_observation(obs)
        info = {"mission": tw_info["objective"], "descriptions": descriptions, "actions": list(self._actions),
                "won": bool(tw_info["won"]), "lost": bool(tw_info["lost"]), "score": tw_info["score"],
                "max_score": tw_info["max_score"], "walkthrough": list(tw_info.get("extra.walkthrough") or [])}
        return " ".join(descriptions), info

    def close(self):
        self._env.close()
