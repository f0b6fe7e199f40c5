"""The GLAM-round benchmark: its FLOP math on a hand example, and a tiny real run through the CLI."""
from __future__ import annotations

import json

import pytest

from benchmarks.glam_round import DTYPES, PHASES, forward_flops, phase_rows, speedups, update_flops
from cluster.cli import build_parser, main
from policies.tokenization import EncodedRequest


def test_forward_and_update_flops_by_hand():
    # 2 contexts (3 and 2 tokens), candidates of 1, 2 and 3 tokens; 10 body params, hidden 4, vocab 100, head 7
    request = EncodedRequest(context_ids=[[1, 2, 3], [4, 5]], candidate_ids=[[[6], [7, 8]], [[9, 10, 11]]])
    # body tokens 5 + 6 - 3 pairs = 8 -> 8 x 2 x 10 = 160; LM head 6 tokens x 2 x 4 x 100 = 4800; head 2 x 7 x 2 = 28
    forward = forward_flops(request, (10, 4, 100), head_params=7)
    assert forward == 4988
    assert update_flops(forward, epochs=2, lora=True) == 2 * 2 * 4988  # forward + 1x backward (LoRA)
    assert update_flops(forward, epochs=2, lora=False) == 2 * 3 * 4988  # forward + 2x backward (full)
    assert update_flops(forward, epochs=1, lora=False, extra_forwards=1) == 4 * 4988  # + the prior's forward


def test_phase_rows_and_speedups_by_hand():
    rows = phase_rows((2.0, 8e9), (6.0, 12e9), limit=4e9)
    assert list(rows) == list(PHASES)
    assert rows["scoring"] == {"seconds": 2.0, "gflop": 8.0, "gflop_per_s": 4.0, "fraction": 1.0}
    assert rows["update"] == {"seconds": 6.0, "gflop": 12.0, "gflop_per_s": 2.0, "fraction": 0.5}
    assert rows["round"] == {"seconds": 8.0, "gflop": 20.0, "gflop_per_s": 2.5, "fraction": 0.625}
    fast = phase_rows((1.0, 8e9), (2.0, 12e9), limit=16e9)
    assert speedups(rows, fast) == {"scoring": 2.0, "update": 3.0, "round": 8.0 / 3.0}


def test_cli_parses_the_lists():
    args = build_parser().parse_args(["bench", "glam-round", "--arms", "ppo_full", "--dtypes", "bfloat16"])
    assert args.arms == ["ppo-full"] and args.dtypes == ["bfloat16"] and args.repeats == 2 and args.steps == 0
    assert args.ceiling_tokens == 256
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "glam-round", "--dtypes", "float64"])


def test_a_config_training_only_the_top_blocks_is_refused():
    with pytest.raises(SystemExit, match="trainable_layers=0"):
        main(["bench", "glam-round", "--set", "backend.trainable_layers=2"])


@pytest.mark.slow
def test_a_tiny_real_run_reports_every_phase(tmp_path, capsys):
    out = tmp_path / "round.json"
    assert main(["bench", "glam-round", "--arms", "ppo-lora", "--dtypes", "float32,bfloat16", "--steps", "1",
                 "--repeats", "1", "--ceiling-tokens", "16", "--set", "runner.num_envs=2", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert set(figures["matmul_flops_per_s"]) == set(DTYPES)
    arm = figures["arms"]["ppo-lora"]
    for dtype in DTYPES:
        rows = arm["dtypes"][dtype]["phases"]
        assert set(rows) == set(PHASES)
        assert all(rows[p]["seconds"] > 0 and rows[p]["gflop"] > 0 and rows[p]["fraction"] > 0 for p in PHASES)
        assert rows["update"]["gflop"] == pytest.approx(2 * rows["scoring"]["gflop"])  # 1 epoch, LoRA, same steps
        ceiling = arm["dtypes"][dtype]["ceiling_flops_per_s"]
        assert ceiling["tokens"] == [4, 16] and ceiling["forward"] > 0 and ceiling["train"] > 0
    assert set(arm["speedup_bf16_over_fp32"]) == set(PHASES)
    printed = capsys.readouterr().out
    assert "target: round >= 80% of the limit" in printed and "model ceiling (4 x 16 tokens)" in printed
