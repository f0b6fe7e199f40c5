"""The words a BabyAI-Text env speaks: its action strings and word substitutions for the
generalization tests of GLAM (out-of-vocabulary nouns, invented words, synonym actions)."""
from __future__ import annotations

import re
from dataclasses import dataclass

ACTIONS = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle")
"""GLAM's action strings; index = minigrid action (0..5)."""


@dataclass(frozen=True)
class Vocabulary:
    """Action strings (index = minigrid action) and whole-word substitutions applied to the mission
    and to every observation clause."""

    actions: tuple[str, ...] = ACTIONS
    """Six distinct action strings, in minigrid's order: left, right, forward, pickup, drop, toggle."""
    words: tuple[tuple[str, str], ...] = ()
    """(minigrid word, word shown) pairs, e.g. ("ball", "table")."""

    def __post_init__(self):
        if len(self.actions) != len(ACTIONS) or len(set(self.actions)) != len(ACTIONS):
            raise ValueError(f"actions must be {len(ACTIONS)} distinct strings, got {self.actions}")

    def translate(self, text: str) -> str:
        """The text with each substituted word replaced (whole words only)."""
        if not self.words:
            return text
        table = dict(self.words)
        pattern = r"\b(" + "|".join(re.escape(w) for w in table) + r")\b"
        return re.sub(pattern, lambda m: table[m.group(1)], text)


STANDARD = Vocabulary()
OOV_NOUNS = Vocabulary(words=(("key", "chair"), ("ball", "table"), ("box", "car")))
INVENTED_WORDS = Vocabulary(words=(
    ("key", "dax"), ("ball", "xolo"), ("box", "afze"),
    ("red", "faze"), ("green", "jatu"), ("blue", "croh"),
    ("purple", "vurst"), ("yellow", "gakul"), ("grey", "sil"),
))
SYNONYM_ACTIONS = Vocabulary(actions=("rotate left", "rotate right", "move ahead", "grab", "release", "activate"))

VOCABULARIES = {
    "standard": STANDARD,
    "oov_nouns": OOV_NOUNS,
    "invented_words": INVENTED_WORDS,
    "synonym_actions": SYNONYM_ACTIONS,
}
