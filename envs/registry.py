"""Gymnasium ids of the BabyAI-Text envs (namespace llmrl/), registered on `import envs`."""
from __future__ import annotations

import gymnasium

ENTRY_POINT = "envs.babyai_text:make_babyai_text"

BASE_LEVELS = (
    "GoToRedBall",
    "GoToLocal",
    "PickupLocal",
    "PutNextLocal",
    "OpenDoor",
    "OpenLocal",
    "PickupThenGoToLocal",
    "MixedTrainLocal",
    "MixedTestLocal",
)
VARIANTS = {"OOVNouns": "oov_nouns", "InventedWords": "invented_words", "SynonymActions": "synonym_actions"}
"""Id suffix -> vocabulary of GLAM's generalization tests."""
VARIANT_LEVELS = ("GoToLocal", "MixedTrainLocal", "MixedTestLocal")


def env_id(level: str, variant: str | None = None) -> str:
    """'llmrl/BabyAI-GoToLocal-v0', 'llmrl/BabyAI-GoToLocal-OOVNouns-v0'."""
    return f"llmrl/BabyAI-{level}{'-' + variant if variant else ''}-v0"


SPECS: dict[str, dict[str, str]] = {
    **{env_id(level): {"level": level} for level in BASE_LEVELS},
    **{
        env_id(level, variant): {"level": level, "vocabulary": vocabulary}
        for level in VARIANT_LEVELS
        for variant, vocabulary in VARIANTS.items()
    },
    env_id("GoToLocal", "French"): {"level": "GoToLocal", "vocabulary": "french"},
}
"""Registered id -> keyword arguments of the entry point."""
ENV_IDS = tuple(SPECS)


CHOICE_ID = "llmrl/TextChoice-v0"
"""A one-step choice with one rewarded action string (envs.choice)."""


def register_all() -> None:
    """Register every id of SPECS, and the text choice, with Gymnasium (registered ids are left alone)."""
    for id_, kwargs in SPECS.items():
        if id_ not in gymnasium.registry:
            gymnasium.register(id=id_, entry_point=ENTRY_POINT, kwargs=kwargs)
    if CHOICE_ID not in gymnasium.registry:
        gymnasium.register(id=CHOICE_ID, entry_point="envs.choice:TextChoice")
