"""Checkpoints: round trip of training state, RNG reproduction, atomic writes, numbered files."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from cluster.checkpoint import (
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)


def _trained_model_and_optimizer(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).pow(2).mean().backward()
    optimizer.step()
    return model, optimizer


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_training_state_round_trips(tmp_path):
    model, optimizer = _trained_model_and_optimizer(seed=0)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "counters": {"update": 7, "env_steps": 1280},
        "config": {"lr": 1e-2, "env": "BabyAI-GoToRedBall-v0", "layers": [1, 2]},
        "buffer": torch.arange(5),
    }
    path = save_checkpoint(checkpoint_path(tmp_path, 7), state)
    loaded = load_checkpoint(path)

    fresh_model, fresh_optimizer = _trained_model_and_optimizer(seed=1)
    fresh_model.load_state_dict(loaded["model"])
    fresh_optimizer.load_state_dict(loaded["optimizer"])
    assert loaded["counters"] == state["counters"] and loaded["config"] == state["config"]
    assert torch.equal(loaded["buffer"], state["buffer"])
    for p, q in zip(model.parameters(), fresh_model.parameters()):
        assert torch.equal(p, q)
    # the same gradient step from the restored Adam state lands on the same parameters
    for m, opt in ((model, optimizer), (fresh_model, fresh_optimizer)):
        opt.zero_grad()
        m(torch.ones(2, 3)).sum().backward()
        opt.step()
    for p, q in zip(model.parameters(), fresh_model.parameters()):
        assert torch.equal(p, q)


def test_restored_rng_states_reproduce_the_same_draws(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = _draws()
    _draws()
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert _draws() == expected
    with pytest.raises(ValueError, match=r"lacks \['numpy'\]"):
        restore_rng_state({"python": random.getstate(), "torch": torch.get_rng_state()})


def test_a_failed_save_keeps_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "state.pt"
    save_checkpoint(path, {"update": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]
    with pytest.raises(CheckpointError, match="could not serialize"):
        save_checkpoint(path, {"update": 2, "callback": lambda: None})
    assert load_checkpoint(path) == {"update": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_missing_or_unreadable_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pt does not exist"):
        load_checkpoint(tmp_path / "absent.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt is unreadable"):
        load_checkpoint(tmp_path / "garbage.pt")


def test_latest_and_prune(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert checkpoint_path(tmp_path, 12) == tmp_path / "checkpoints" / "update_000012.pt"
    for update in (1, 10, 2):
        save_checkpoint(checkpoint_path(tmp_path, update), {"update": update})
    (tmp_path / "checkpoints" / ".update_000099.pt.123.abcd.tmp").write_bytes(b"")  # a crashed save
    (tmp_path / "checkpoints" / "notes.txt").write_text("x")
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 10)

    assert prune_checkpoints(tmp_path, keep=2) == [checkpoint_path(tmp_path, 1)]
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("update_*.pt")) == [
        "update_000002.pt",
        "update_000010.pt",
    ]
    assert load_checkpoint(latest_checkpoint(tmp_path)) == {"update": 10}
    with pytest.raises(ValueError, match="keep must be >= 1"):
        prune_checkpoints(tmp_path, keep=0)
