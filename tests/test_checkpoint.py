"""Checkpoints: state round trips through safetensors + JSON (no pickle), RNG reproduction, atomic
numbered directories, the old pickled format refused."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from cluster.checkpoint import (CheckpointError, checkpoint_path, iteration_of, latest_checkpoint, prune_checkpoints,
                                restore_rng_state, rng_state, write_checkpoint)
from learners.state_io import StateFormatError, load_state, save_state


def _trained_model_and_optimizer(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.99))
    model(torch.randn(4, 3)).pow(2).mean().backward()
    optimizer.step()
    return model, optimizer


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_training_state_round_trips_without_pickle(tmp_path):
    model, optimizer = _trained_model_and_optimizer(seed=0)
    tied = torch.arange(4.0)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),  # int keys, tuples (betas), tensors
        "counters": {"update": 7, "env_steps": 1280},
        "config": {"lr": 1e-2, "env": "BabyAI-GoToRedBall-v0", "layers": [1, 2], "none": None},
        "tied": [tied, tied],  # shared memory (tied embeddings) is stored twice
        "generator": np.random.default_rng(3).bit_generator.state,  # 128-bit ints
        "array": np.arange(3, dtype=np.uint32),
        "__odd": 1, (1, 2): "tuple key",
    }
    save_state(tmp_path, "s", state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.safetensors"]
    loaded = load_state(tmp_path, "s")

    fresh_model, fresh_optimizer = _trained_model_and_optimizer(seed=1)
    fresh_model.load_state_dict(loaded["model"])
    fresh_optimizer.load_state_dict(loaded["optimizer"])
    assert loaded["counters"] == state["counters"] and loaded["config"] == state["config"]
    assert loaded["generator"] == state["generator"] and loaded[(1, 2)] == "tuple key" and loaded["__odd"] == 1
    assert loaded["array"].dtype == np.uint32 and loaded["array"].tolist() == [0, 1, 2]
    assert all(torch.equal(t, tied) for t in loaded["tied"])
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)
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
    save_state(tmp_path, "rng", rng_state())
    expected = _draws()
    _draws()
    restore_rng_state(load_state(tmp_path, "rng"))
    assert _draws() == expected
    with pytest.raises(ValueError, match=r"lacks \['numpy'\]"):
        restore_rng_state({"python": random.getstate(), "torch": torch.get_rng_state()})


def test_unstorable_values_and_damaged_files_are_named(tmp_path):
    with pytest.raises(TypeError, match="cannot store a function"):
        save_state(tmp_path, "bad", {"callback": lambda: None})
    with pytest.raises(StateFormatError, match="absent.json is missing"):
        load_state(tmp_path, "absent")
    save_state(tmp_path, "s", {"w": torch.ones(1000)})
    data = (tmp_path / "s.safetensors").read_bytes()
    (tmp_path / "s.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(StateFormatError, match="unreadable.*truncated"):
        load_state(tmp_path, "s")
    save_state(tmp_path, "t", {"w": 1})
    (tmp_path / "t.json").write_text(json.dumps({"tree": {}}))
    with pytest.raises(StateFormatError, match="not an llmrl state file"):
        load_state(tmp_path, "t")


def test_a_failed_save_keeps_the_previous_checkpoint_and_leaves_no_temp_dir(tmp_path):
    write_checkpoint(tmp_path, 1, lambda d: save_state(d, "s", {"update": 1}))

    def crash(directory):
        save_state(directory, "s", {"update": 2})
        raise KeyboardInterrupt  # killed mid-save

    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(tmp_path, 1, crash)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["checkpoint_000001"]
    assert load_state(latest_checkpoint(tmp_path), "s") == {"update": 1}


def test_latest_and_prune(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert checkpoint_path(tmp_path, 12) == tmp_path / "checkpoints" / "checkpoint_000012"
    for update in (1, 10, 2):
        write_checkpoint(tmp_path, update, lambda d, u=update: save_state(d, "s", {"update": u}))
    (tmp_path / "checkpoints" / ".checkpoint_000099.123.abcd.tmp").mkdir()  # a crashed save
    (tmp_path / "checkpoints" / "notes.txt").write_text("x")
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 10)
    assert iteration_of(latest_checkpoint(tmp_path)) == 10

    assert prune_checkpoints(tmp_path, keep=2) == [checkpoint_path(tmp_path, 1)]
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("checkpoint_*")) == [
        "checkpoint_000002", "checkpoint_000010"]
    assert load_state(latest_checkpoint(tmp_path), "s") == {"update": 10}
    with pytest.raises(ValueError, match="keep must be >= 1"):
        prune_checkpoints(tmp_path, keep=0)


def test_old_pickled_checkpoints_are_refused(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "update_000004.pt").write_bytes(b"\x80\x04pickled")
    with pytest.raises(CheckpointError, match="update_000004.pt-style checkpoints.*pickle"):
        latest_checkpoint(tmp_path)
