"""Registered BabyAI-Text envs: making, stepping, seeding, held-out splits, vocabularies, rewards, prompts."""
from __future__ import annotations

import re

import gymnasium
import numpy as np
import pytest
from minigrid.core.constants import DIR_TO_VEC

import envs
from envs.local_tasks import HELD_OUT
from envs.prompt import PromptBuilder
from envs.registry import env_id
from envs.vocabulary import ACTIONS, INVENTED_WORDS, SYNONYM_ACTIONS

PAIR = re.compile(r"\b(red|green|blue|purple|yellow|grey) (key|ball|box|door)\b")


@pytest.mark.parametrize("id_", envs.ENV_IDS)
def test_every_registered_id_makes_resets_and_steps(id_):
    env = gymnasium.make(id_)
    obs, info = env.reset(seed=1)
    assert obs["image"].shape == (7, 7, 3)
    assert isinstance(info["mission"], str) and info["mission"] == obs["mission"]
    assert len(info["actions"]) == 6 and env.action_space.n == 6
    assert info["descriptions"] and all(isinstance(c, str) for c in info["descriptions"])
    for action in (2, info["actions"][0], np.int64(1), info["actions"][5]):
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(reward, float)
        assert isinstance(terminated, bool) and isinstance(truncated, bool)
        assert {"descriptions", "mission", "actions"} <= info.keys()


@pytest.mark.parametrize("level, max_steps", [
    ("GoToRedBall", 64), ("GoToLocal", 64), ("PickupLocal", 64), ("PutNextLocal", 128),
    ("PickupThenGoToLocal", 128), ("OpenLocal", 128),
])
def test_max_steps_come_from_the_level(level, max_steps):
    env = gymnasium.make(env_id(level))
    env.reset(seed=0)
    assert env.unwrapped.max_steps == max_steps


def test_mixed_set_max_steps_per_task():
    env = gymnasium.make(env_id("MixedTrainLocal"))
    expected = {"goto": 64, "pickup": 64, "putnext": 128, "pickup_then_goto": 128, "open": 128}
    seen = {}
    for seed in range(40):
        env.reset(seed=seed)
        seen[env.unwrapped.task] = env.unwrapped.max_steps
    assert seen == expected


@pytest.mark.parametrize("id_", [env_id("GoToLocal"), env_id("MixedTrainLocal"), env_id("PickupLocal")])
def test_seeded_resets_are_reproducible(id_):
    def rollout():
        env = gymnasium.make(id_)
        obs, info = env.reset(seed=7)
        texts = [(info["mission"], info["descriptions"])]
        images = [obs["image"]]
        for action in (0, 2, 2, 1, 2):
            obs, _, _, _, info = env.step(action)
            texts.append((info["mission"], info["descriptions"]))
            images.append(obs["image"])
        return texts, images

    (texts_a, images_a), (texts_b, images_b) = rollout(), rollout()
    assert texts_a == texts_b
    assert all(np.array_equal(a, b) for a, b in zip(images_a, images_b))
    env = gymnasium.make(id_)
    missions = {env.reset(seed=s)[1]["mission"] for s in range(10)}
    assert len(missions) > 1


def test_mixed_train_never_names_a_held_out_pair():
    env = gymnasium.make(env_id("MixedTrainLocal"))
    tasks = set()
    for seed in range(200):
        mission = env.reset(seed=seed)[1]["mission"]
        assert not set(PAIR.findall(mission)) & HELD_OUT, mission
        tasks.add(env.unwrapped.task)
    assert tasks == {"goto", "pickup", "putnext", "pickup_then_goto", "open"}


def test_mixed_test_names_only_held_out_pairs():
    env = gymnasium.make(env_id("MixedTestLocal"))
    for seed in range(200):
        mission = env.reset(seed=seed)[1]["mission"]
        pairs = set(PAIR.findall(mission))
        assert pairs and pairs <= HELD_OUT, mission


def test_pickup_then_goto_missions():
    env = gymnasium.make(env_id("PickupThenGoToLocal"))
    missions = [env.reset(seed=s)[1]["mission"] for s in range(20)]
    obj = r"(the|a) \w+ \w+"
    form = re.compile(rf"^pick up {obj}, then go to {obj}$|^go to {obj} after you pick up {obj}$")
    assert all(form.match(m) for m in missions), missions


def all_text(info) -> str:
    return " ".join([info["mission"], *info["descriptions"]])


@pytest.mark.parametrize("level", ["GoToLocal", "MixedTrainLocal"])
def test_oov_nouns_replace_object_nouns_in_the_text(level):
    env = gymnasium.make(env_id(level, "OOVNouns"))
    text = " ".join(all_text(env.reset(seed=s)[1]) for s in range(10))
    assert re.search(r"\b(chair|table|car)\b", text)
    assert not re.search(r"\b(key|ball|box)\b", text)


def test_invented_words_replace_nouns_and_colours():
    env = gymnasium.make(env_id("GoToLocal", "InventedWords"))
    text = " ".join(all_text(env.reset(seed=s)[1]) for s in range(10))
    invented = {new for _, new in INVENTED_WORDS.words}
    assert set(re.findall(r"\w+", text)) & invented
    assert not re.search(r"\b(key|ball|box|red|green|blue|purple|yellow|grey)\b", text)


def test_synonym_actions_accept_their_own_strings_only():
    env = gymnasium.make(env_id("GoToLocal", "SynonymActions"))
    _, info = env.reset(seed=0)
    assert tuple(info["actions"]) == SYNONYM_ACTIONS.actions
    before = env.unwrapped.agent_dir
    env.step("rotate right")
    assert env.unwrapped.agent_dir == (before + 1) % 4
    with pytest.raises(ValueError, match="rotate left"):
        env.step("turn right")


@pytest.mark.parametrize("bad", [6, -1, "jump", "Turn left", True, 2.0, None])
def test_invalid_actions_raise_naming_the_allowed_ones(bad):
    env = gymnasium.make(env_id("GoToRedBall"))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="'turn left', 'turn right', 'go forward', 'pick up', 'drop', 'toggle'"):
        env.step(bad)


def face_away_from(env, target) -> None:
    """Put the agent on an empty cell beside target, facing directly away from it."""
    for d, vec in enumerate(DIR_TO_VEC):
        pos = tuple(np.array(target) - vec)
        if env.grid.get(*pos) is None:
            env.agent_pos, env.agent_dir = pos, (d + 2) % 4
            return
    raise AssertionError("target has no free neighbour")


@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_success_reward_is_minigrids_scaled(scale):
    env = gymnasium.make(env_id("GoToRedBall"), reward_scale=scale)
    env.reset(seed=3)
    level = env.unwrapped
    ball = next(o for o in level.get_room(0, 0).objs if (o.color, o.type) == ("red", "ball"))
    face_away_from(level, ball.cur_pos)
    _, reward, terminated, _, _ = env.step("turn left")
    assert reward == 0.0 and not terminated
    _, reward, terminated, _, _ = env.step("turn left")
    assert terminated
    assert reward == pytest.approx(scale * (1 - 0.9 * 2 / 64))


def test_open_task_locked_door_opens_with_its_key():
    env = gymnasium.make(env_id("OpenLocal"))
    _, info = env.reset(seed=0)
    level = env.unwrapped
    door = level.get_room(0, 0).doors[0]
    room = level.room_from_pos(*level.agent_pos)
    key = next(o for o in room.objs if o.type == "key" and o.color == door.color)
    assert door.is_locked and re.fullmatch(rf"open the {door.color} door", info["mission"])
    level.grid.set(*key.cur_pos, None)
    level.carrying = key
    face_away_from(level, door.cur_pos)
    level.agent_dir = (level.agent_dir + 2) % 4
    _, reward, terminated, _, info = env.step("toggle")
    assert terminated and reward == pytest.approx(1 - 0.9 / 128)
    assert f"You see a open {door.color} door 1 step forward" in info["descriptions"]
    assert info["descriptions"][0] == f"You carry a {door.color} key"


def test_prompt_exact_text_over_a_scripted_episode():
    prompt = PromptBuilder(ACTIONS)
    prompt.reset("go to the red ball", ["You see a wall 2 steps forward", "You see a red ball 1 step left"])
    head = ("Possible action of the agent: turn left, turn right, go forward, pick up, drop, toggle\n"
            "Goal of the agent: go to the red ball\n")
    assert prompt.render() == head + (
        "Observation 0: You see a wall 2 steps forward, You see a red ball 1 step left\n"
        "Action 0:")
    prompt.step("go forward", ["You see a wall 1 step forward"])
    prompt.step(0, [])
    assert prompt.render() == head + (
        "Observation 0: You see a wall 2 steps forward, You see a red ball 1 step left\n"
        "Action 0: go forward\n"
        "Observation 1: You see a wall 1 step forward\n"
        "Action 1: turn left\n"
        "Observation 2:\n"
        "Action 2:")
    prompt.step("toggle", ["You see a red ball 1 step forward"])
    assert prompt.render() == head + (
        "Observation 0: You see a wall 1 step forward\n"
        "Action 0: turn left\n"
        "Observation 1:\n"
        "Action 1: toggle\n"
        "Observation 2: You see a red ball 1 step forward\n"
        "Action 2:")
    prompt.reset("pick up the blue key", ["You see a blue key 1 step forward"])
    assert prompt.render() == (
        "Possible action of the agent: turn left, turn right, go forward, pick up, drop, toggle\n"
        "Goal of the agent: pick up the blue key\n"
        "Observation 0: You see a blue key 1 step forward\n"
        "Action 0:")


def test_prompt_from_a_synonym_env_lists_its_actions():
    env = gymnasium.make(env_id("GoToLocal", "SynonymActions"))
    _, info = env.reset(seed=0)
    prompt = PromptBuilder(info["actions"])
    prompt.reset(info["mission"], info["descriptions"])
    for action in ("rotate left", "move ahead", "rotate right", "switch"):
        _, _, _, _, info = env.step(action)
        prompt.step(action, info["descriptions"])
    text = prompt.render()
    assert text.startswith(
        "Possible action of the agent: rotate left, rotate right, move ahead, take, release, switch\n"
        f"Goal of the agent: {info['mission']}\n"
    )
    assert text.endswith(f"Observation 2: {', '.join(info['descriptions'])}\nAction 2:")
    assert "Action 0: rotate right\n" in text and "Action 1: switch\n" in text


def test_goto_in_french():
    env = gymnasium.make(env_id("GoToLocal", "French"))
    _, info = env.reset(seed=0)
    assert info["mission"] == "va à la balle verte"
    assert info["descriptions"][:2] == ["Tu vois un mur 2 pas à gauche",
                                        "Tu vois une clé violette 1 pas à gauche et 2 pas devant"]
    assert info["actions"][:3] == ["tourner à gauche", "tourner à droite", "avancer"]
    _, _, _, _, info = env.step("avancer")  # the French strings are the env's actions
    from envs.vocabulary import FRENCH

    assert FRENCH.translate("You see a locked blue door 1 step right") == "Tu vois une porte bleue verrouillée 1 pas à droite"
    assert FRENCH.translate("You carry a red key") == "Tu portes une clé rouge"
