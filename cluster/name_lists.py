"""Comma-separated name lists on the command line, checked when the arguments are parsed."""
from __future__ import annotations

import argparse
from typing import Callable, Sequence


def name_list(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse `type` for 'a,b,c' over `allowed`: returns the names in order; '-' and '_' are
    interchangeable (maze, mini-catch, mini_catch); an unknown or empty list is a usage error that
    names the offending entries and what is allowed."""

    def parse(text: str) -> list[str]:
        names, unknown = [], []
        for raw in (part.strip() for part in text.split(",")):
            if not raw:
                continue
            match = next((a for a in allowed if a.replace("-", "_") == raw.replace("-", "_")), None)
            (names if match else unknown).append(match or raw)
        if unknown:
            shown = ", ".join(map(repr, unknown))
            raise argparse.ArgumentTypeError(f"unknown {shown}; choose from {', '.join(allowed)}")
        if not names:
            raise argparse.ArgumentTypeError(f"empty list; choose from {', '.join(allowed)}")
        return names

    return parse
