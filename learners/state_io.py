"""Training state on disk without pickle: tensors in a safetensors file, everything else in JSON.

`save_state(directory, name, tree)` writes `name.safetensors` (every tensor of the tree) and
`name.json` (the tree, each tensor replaced by a reference to its safetensors key). The tree may
hold dicts (any scalar keys), lists, tuples, str, int, float, bool, None, tensors and NumPy arrays:
what optimizer state dicts, RNG states and counters are made of. Loading reads JSON and
safetensors only, so a checkpoint can never run code.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

FORMAT = "llmrl-state/1"
_TENSOR, _ARRAY, _TUPLE, _DICT = "__tensor__", "__ndarray__", "__tuple__", "__dict__"


class StateFormatError(ValueError):
    """A state file is missing, truncated or not in this format; the message names the file."""


def save_state(directory: Path, name: str, tree: Any) -> None:
    """Write `tree` as DIRECTORY/NAME.json plus DIRECTORY/NAME.safetensors."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(tree, tensors)
    seen: set[int] = set()
    for key, tensor in tensors.items():  # safetensors refuses tensors that share memory (tied weights)
        tensor = tensor.detach().cpu().contiguous()
        if tensor.numel() and tensor.data_ptr() in seen:
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        tensors[key] = tensor
    save_file(tensors, str(directory / f"{name}.safetensors"))
    (directory / f"{name}.json").write_text(json.dumps({"format": FORMAT, "tree": encoded}))


def load_state(directory: Path, name: str, device: str | torch.device = "cpu") -> Any:
    """The tree written by `save_state(directory, name, ...)`, its tensors on `device`."""
    directory = Path(directory)
    meta_path, tensor_path = directory / f"{name}.json", directory / f"{name}.safetensors"
    for path in (meta_path, tensor_path):
        if not path.is_file():
            raise StateFormatError(f"{path} is missing: {directory} is not a complete checkpoint")
    try:
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(tensor_path), device=str(device))
    except Exception as e:
        raise StateFormatError(f"{directory}/{name}.* is unreadable ({type(e).__name__}: {e}); it may be "
                               "truncated: delete this checkpoint to resume from the previous one") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise StateFormatError(f"{meta_path} is not an llmrl state file (format {FORMAT!r} expected)")
    return _decode(meta["tree"], tensors)


def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value
        return {_TENSOR: key}
    if isinstance(value, np.ndarray):
        return {_ARRAY: value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, tensors) for k, v in value.items()}
        return {_DICT: [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint; use tensors, arrays, numbers, "
                    "strings, lists, tuples and dicts")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if _TENSOR in value:
        return tensors[value[_TENSOR]]
    if _ARRAY in value:
        return np.array(value[_ARRAY], dtype=value["dtype"])
    if _TUPLE in value:
        return tuple(_decode(v, tensors) for v in value[_TUPLE])
    if _DICT in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value[_DICT]}
    return {k: _decode(v, tensors) for k, v in value.items()}
