"""Comma-separated name options: parsed, normalized and rejected at argument-parsing time."""
from __future__ import annotations

import argparse

import pytest

from cluster.cli import build_parser
from benchmarks.common import name_list


def test_names_keep_order_and_accept_either_separator():
    parse = name_list(("chain", "mini_catch", "ppo-lora"))
    assert parse("mini-catch, chain,") == ["mini_catch", "chain"]
    assert parse("ppo_lora") == ["ppo-lora"]


@pytest.mark.parametrize("text, message", [("chain,catch", "unknown 'catch'; choose from chain, mini_catch"),
                                           (" , ", "empty list")])
def test_unknown_or_empty_lists_name_the_problem(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        name_list(("chain", "mini_catch"))(text)


def test_bench_commands_parse_and_reject_their_lists(capsys):
    parser = build_parser()
    args = parser.parse_args(["bench", "icpi", "--envs", "mini-catch,maze", "--agents", "icpi"])
    assert args.envs == ["mini_catch", "maze"] and args.agents == ["icpi"] and args.order_envs == ["chain", "maze"]
    assert parser.parse_args(["bench", "glam"]).arms == ["ppo-lora", "ppo-full", "random", "zero-shot"]
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "glam", "--arms", "ppo-lora,dqn"])
    assert "argument --arms: unknown 'dqn'; choose from ppo-lora" in capsys.readouterr().err
