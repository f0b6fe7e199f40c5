"""Numeric precision: which dtype `auto` means on this hardware, and the mixed-precision context.

Mixed precision keeps the weights (a learner's master weights, its optimizer state) in float32 and
runs the model's matmuls in bfloat16 under torch.autocast; norms, the residual stream, the value
head and every log-softmax stay float32. Scorer workers use the same context, so a rollout's
log-probs are the numbers the learner's forward computes for the same weights.
"""
from __future__ import annotations

import contextlib
import functools
import logging

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""/proc/cpuinfo flags of CPUs with bfloat16 matmul units (Intel AMX; AVX512-BF16 on Intel and AMD)."""

log = logging.getLogger(__name__)


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first processor listed in a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


@functools.lru_cache(maxsize=None)
def bf16_units(device_type: str) -> str | None:
    """Why this machine computes bfloat16 fast on `device_type` ('cpu' or 'cuda'), or None where it does not."""
    if device_type == "cuda":
        return torch.cuda.get_device_name() if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
    if device_type != "cpu":
        return None
    try:
        with open("/proc/cpuinfo") as f:
            flags = cpu_flags(f.read())
    except OSError:  # not Linux: no way to tell here, so float32
        return None
    found = [flag for flag in CPU_BF16_FLAGS if flag in flags]
    return "CPU flags " + ", ".join(found) if found else None


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The compute dtype: an explicit name as given; 'auto' is bfloat16 where the device has bf16 units,
    else float32 (logged once per process and device type)."""
    if dtype != "auto":
        return DTYPES[dtype]
    units = bf16_units(device.type)
    chosen = torch.bfloat16 if units else torch.float32
    _log_auto(device.type, str(chosen).removeprefix("torch."), units)
    return chosen


@functools.lru_cache(maxsize=None)
def _log_auto(device_type: str, chosen: str, units: str | None) -> None:
    reason = f"bf16 units found ({units})" if units else "no bf16 units found"
    log.info("dtype auto on %s: %s (%s)", device_type, chosen, reason)


class CastOnceLinear(torch.nn.Module):
    """A Linear layer whose frozen weight is cast to the compute dtype once per change of the weight (for an LM
    head tied to the float32 input embeddings), instead of by autocast at every call: the same numbers.
    A weight that requires grad is left to autocast."""

    def __init__(self, linear: torch.nn.Module, dtype: torch.dtype):
        super().__init__()
        self.linear, self.dtype = linear, dtype
        self._key, self._cast = None, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.linear.weight
        if weight.requires_grad or not torch.is_autocast_enabled(x.device.type):
            return self.linear(x)
        key = (weight.data_ptr(), weight._version)
        if key != self._key:
            with torch.inference_mode(False), torch.no_grad():  # a normal tensor: autograd may save it
                self._key, self._cast = key, weight.detach().to(self.dtype)
        bias = getattr(self.linear, "bias", None)
        return torch.nn.functional.linear(x.to(self.dtype), self._cast, None if bias is None else bias.to(self.dtype))


def compute_context(device: torch.device, dtype: torch.dtype, weights_dtype: torch.dtype):
    """torch.autocast to `dtype` when the weights are wider than the compute dtype, else nothing to do."""
    if dtype == weights_dtype:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
