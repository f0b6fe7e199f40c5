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
    """(minigrid word or phrase, shown) pairs, e.g. ("ball", "table"); whole words, longest first."""
    rules: tuple[tuple[str, str], ...] = ()
    """(regex, replacement) pairs applied in order before `words` (e.g. to move adjectives after nouns)."""

    def __post_init__(self):
        if len(self.actions) != len(ACTIONS) or len(set(self.actions)) != len(ACTIONS):
            raise ValueError(f"actions must be {len(ACTIONS)} distinct strings, got {self.actions}")

    def translate(self, text: str) -> str:
        """The text with each substituted word replaced (whole words only)."""
        for pattern, replacement in self.rules:
            text = re.sub(pattern, replacement, text)
        if not self.words:
            return text
        table = dict(self.words)
        keys = sorted(table, key=len, reverse=True)  # "You see" before "You"
        pattern = r"\b(" + "|".join(re.escape(w) for w in keys) + r")\b"
        return re.sub(pattern, lambda m: table[m.group(1)], text)


STANDARD = Vocabulary()
OOV_NOUNS = Vocabulary(words=(("key", "chair"), ("ball", "table"), ("box", "car")))
INVENTED_WORDS = Vocabulary(words=(
    ("key", "dax"), ("ball", "xolo"), ("box", "afze"),
    ("red", "faze"), ("green", "jatu"), ("blue", "croh"),
    ("purple", "vurst"), ("yellow", "gakul"), ("grey", "sil"),
))
SYNONYM_ACTIONS = Vocabulary(actions=("rotate left", "rotate right", "move ahead", "take", "release", "switch"))
"""GLAM's own synonym list (its generalization test)."""

_OBJECT = r"(ball|key|box|door)"
FRENCH = Vocabulary(
    actions=("tourner à gauche", "tourner à droite", "avancer", "ramasser", "lâcher", "basculer"),
    rules=(  # French order (noun, colour, state) while still in English words; every object but a wall is feminine
        (r"\b(?:a|the) (open|closed|locked) (\w+) door\b", r"une porte \2 \1"),
        (r"\bgo to (?:the|a) (\w+) " + _OBJECT + r"\b", r"va à la \2 \1"),
        (r"\b(?:a|the) (\w+) " + _OBJECT + r"\b", r"une \2 \1"),
        (r"\b(\d+) steps?\b", r"\1 pas"),
    ),
    words=(
        ("You see a wall", "Tu vois un mur"), ("You see", "Tu vois"), ("You carry", "Tu portes"),
        ("ball", "balle"), ("key", "clé"), ("box", "boîte"), ("door", "porte"),
        ("red", "rouge"), ("green", "verte"), ("blue", "bleue"), ("purple", "violette"), ("yellow", "jaune"),
        ("grey", "grise"), ("open", "ouverte"), ("closed", "fermée"), ("locked", "verrouillée"),
        ("forward", "devant"), ("left", "à gauche"), ("right", "à droite"), ("and", "et"),
    ),
)
"""GLAM's French test (GoTo missions and observations in French; the prompt's frame stays English)."""

VOCABULARIES = {
    "standard": STANDARD,
    "oov_nouns": OOV_NOUNS,
    "invented_words": INVENTED_WORDS,
    "synonym_actions": SYNONYM_ACTIONS,
    "french": FRENCH,
}
