"""TextWorld games: pure helpers; generated games won by their walkthrough, admissible commands, the
cache, errors, deterministic generation. Each test game is generated once per module (1-3 s each)."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import gymnasium
import pytest

import envs  # noqa: F401  (registers the llmrl/ ids)
from envs import textworld_games as tw
from envs.textworld_games import TEXTWORLD_IDS, TextWorldGame, clean_observation, game_key, settings_argv

pytestmark = pytest.mark.filterwarnings(  # jericho's, about TextWorld games; TextWorld silences them itself
    "ignore::UserWarning:jericho.*")
needs_textworld = pytest.mark.skipif(importlib.util.find_spec("textworld") is None, reason="textworld not installed")

RAW_START = (
    "\n\n\n                    ________  ________  __    __  ________        \n"
    "                   |        \\|        \\|  \\  |  \\|        \\       \n"
    "                    \\$$$$$$$$| $$$$$$$$| $$  | $$ \\$$$$$$$$       \n\n"
    "Get ready to pick stuff up! Your task for today is to recover the coin.\n\n-= Bedroom =-\n"
    "You're now in the bedroom.\n\n\n\nThere is a coin on the floor.\n\n"
    ">                                                          -= Bedroom =-0/1"
)
RAW_END = (
    "\nYou pick up the coin from the ground.\n\n\n\nYour score has just gone up by one point.\n\n\n"
    "                *** The End ***\n\nYou scored 1 out of a possible 1, in 2 turns.\n\n\n"
    "Would you like to RESTART, RESTORE a saved game, QUIT or UNDO the last command?\n"
    ">                                                           -= Bedroom =-0/1"
)


def test_clean_observation():
    assert clean_observation(RAW_START) == [
        "Get ready to pick stuff up!", "Your task for today is to recover the coin.", "-= Bedroom =-",
        "You're now in the bedroom.", "There is a coin on the floor."]
    assert clean_observation(RAW_END) == [
        "You pick up the coin from the ground.", "Your score has just gone up by one point.", "*** The End ***",
        "You scored 1 out of a possible 1, in 2 turns."]
    assert clean_observation('You read "Cooking (3rd Ed.)" here:\n---------\nRecipe #1\n>') == [
        'You read "Cooking (3rd Ed.)" here:', "Recipe #1"]


def test_settings_and_key():
    params = {"recipe": 2, "take": 2, "go": 6, "open": True, "cut": False, "recipe_seed": 3}
    assert settings_argv(params) == ["--recipe", "2", "--take", "2", "--go", "6", "--open", "--recipe-seed", "3"]
    assert game_key("tw-cooking", params, 4) == "tw-cooking_go6_open_recipe2_recipe_seed3_take2_seed4"
    with pytest.raises(ValueError, match="file name"):
        game_key("tw-cooking", {"split": "a/b"}, 0)


def test_registration_generates_nothing_and_needs_no_textworld():
    assert {"llmrl/TextWorld-CoinCollector-L1-v0", "llmrl/TextWorld-TreasureHunter-L1-v0",
            "llmrl/TextWorld-Cooking-R1T1G1-v0"} <= set(TEXTWORLD_IDS) <= set(gymnasium.registry)
    code = "import sys, envs; assert 'textworld' not in sys.modules, 'textworld imported'"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "LLMRL_CACHE": "/nonexistent/llmrl"})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh LLMRL_CACHE for this module, with one coin-collector and one treasure-hunter game."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("llmrl_cache")
        mp.setenv("LLMRL_CACHE", str(root))
        if importlib.util.find_spec("textworld") is not None:
            tw.generate_game("tw-coin_collector", {"level": 5}, 1)
            tw.generate_game("tw-treasure_hunter", {"level": 10}, 1)
        yield root


def play_walkthrough(env: TextWorldGame, skip_inadmissible: bool = False):
    """Play the walkthrough; returns (final info, total reward, per-state action lists)."""
    _, info = env.reset(seed=0)
    total, seen = 0.0, [info["actions"]]
    for command in info["walkthrough"]:
        if skip_inadmissible and command not in info["actions"]:
            continue
        assert command in info["actions"], (command, info["actions"])
        assert info["actions"] == sorted(info["actions"])
        _, reward, terminated, truncated, info = env.step(command)
        total += reward
        seen.append(info["actions"])
    assert terminated and not truncated
    return info, total, seen


@needs_textworld
@pytest.mark.parametrize("env_id,game_seed", [("llmrl/TextWorld-CoinCollector-L5-v0", 1),
                                              ("llmrl/TextWorld-TreasureHunter-L10-v0", 1)])
def test_walkthrough_wins(cache, env_id, game_seed):
    env = gymnasium.make(env_id, game_seed=game_seed)
    info, total, seen = play_walkthrough(env.unwrapped)
    assert info["success"] is True and info["won"] and not info["lost"]
    assert info["score"] == info["max_score"] == total > 0
    assert len(seen) == len(info["walkthrough"]) + 1 >= 5
    assert len({tuple(a) for a in seen}) > 1  # the admissible commands change with the state
    env.close()


@needs_textworld
def test_interface_by_index_and_errors(cache):
    env = TextWorldGame("tw-coin_collector", {"level": 5}, game_seed=1)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    obs, info = env.reset(seed=123)
    assert obs == " ".join(info["descriptions"]) and "$$" not in obs and ">" not in obs
    assert info["mission"] and "success" not in info and info["score"] == 0
    assert obs == env.reset(seed=7)[0]  # the reset seed does not change the game
    first = info["walkthrough"][0]
    _, reward, terminated, truncated, info2 = env.step(info["actions"].index(first))
    assert (reward, terminated, truncated) == (0.0, False, False) and info2["actions"] != info["actions"]
    for bad in ("fly to the moon", len(info2["actions"]), -1, True):
        with pytest.raises(ValueError, match=f"admissible commands {re.escape(repr(info2['actions'][0]))}"):
            env.step(bad)


@needs_textworld
def test_truncation_at_horizon(cache):
    env = TextWorldGame("tw-coin_collector", {"level": 5}, game_seed=1, horizon=3)
    env.reset()
    flags = [env.step("look")[2:5] for _ in range(3)]
    assert [(t, tr) for t, tr, _ in flags] == [(False, False), (False, False), (False, True)]
    assert flags[-1][2]["success"] is False
    with pytest.raises(RuntimeError, match="reset"):
        env.step("look")


@needs_textworld
def test_cached_game_is_not_regenerated(cache, monkeypatch):
    path = tw.generate_game("tw-coin_collector", {"level": 5}, 1)
    assert path.parent == cache / "textworld" / __import__("textworld").__version__
    mtime = path.stat().st_mtime_ns

    def fail(*args):
        raise AssertionError("regenerated a cached game")

    monkeypatch.setattr(tw, "_build", fail)
    assert TextWorldGame("tw-coin_collector", {"level": 5}, game_seed=1).game_file == path
    assert path.stat().st_mtime_ns == mtime


@needs_textworld
def test_bad_settings_error(cache):
    with pytest.raises(ValueError, match="--level"):
        tw.generate_game("tw-coin_collector", {}, 0)
    with pytest.raises(ValueError, match="unknown TextWorld challenge"):
        tw.generate_game("tw-nope", {"level": 1}, 0)


@needs_textworld
@pytest.mark.slow
def test_generation_is_deterministic(cache, tmp_path, monkeypatch):
    """Same challenge, settings and seed in a second cache -> the same walkthrough and objective; another
    seed -> another game."""
    first = TextWorldGame("tw-coin_collector", {"level": 5}, game_seed=1)
    monkeypatch.setenv("LLMRL_CACHE", str(tmp_path))
    again, other = (TextWorldGame("tw-coin_collector", {"level": 5}, game_seed=s) for s in (1, 2))
    assert again.game_file != first.game_file
    infos = [env.reset()[1] for env in (first, again, other)]
    assert infos[0]["walkthrough"] == infos[1]["walkthrough"] and infos[0]["mission"] == infos[1]["mission"]
    assert (infos[2]["walkthrough"], infos[2]["mission"]) != (infos[0]["walkthrough"], infos[0]["mission"])


@needs_textworld
@pytest.mark.slow
def test_cooking_walkthrough_wins(cache):
    """Cooking walkthroughs can hold redundant commands (opening an open fridge): skipped, it still wins."""
    env = gymnasium.make("llmrl/TextWorld-Cooking-R2T2G6-Open-v0", game_seed=7)
    info, total, _ = play_walkthrough(env.unwrapped, skip_inadmissible=True)
    assert info["success"] is True and info["score"] == info["max_score"] == total
