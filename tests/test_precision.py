"""dtype auto: bf16 units read from the CPU flags; explicit dtypes win; the mixed-precision context."""
from __future__ import annotations

import pytest
import torch

from policies.precision import CastOnceLinear, compute_context, cpu_flags, resolve_dtype

CPUINFO = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx512f {extra}\nbogomips\t: 4000\n"


def test_cpu_flags_are_read_from_cpuinfo():
    assert "avx512_bf16" in cpu_flags(CPUINFO.format(extra="avx512_bf16"))
    assert "amx_bf16" not in cpu_flags(CPUINFO.format(extra=""))
    assert cpu_flags("no flags here") == set()


def test_explicit_dtypes_win_over_auto():
    cpu = torch.device("cpu")
    assert resolve_dtype("float32", cpu) is torch.float32
    assert resolve_dtype("bfloat16", cpu) is torch.bfloat16
    assert resolve_dtype("auto", cpu) in (torch.float32, torch.bfloat16)


def test_auto_follows_the_bf16_units(monkeypatch):
    import policies.precision as precision

    monkeypatch.setattr(precision, "bf16_units", lambda device_type: "CPU flags amx_bf16")
    assert resolve_dtype("auto", torch.device("cpu")) is torch.bfloat16
    monkeypatch.setattr(precision, "bf16_units", lambda device_type: None)
    assert resolve_dtype("auto", torch.device("cpu")) is torch.float32


def test_mixed_precision_context_only_when_the_weights_are_wider():
    cpu = torch.device("cpu")
    with compute_context(cpu, torch.bfloat16, torch.float32):
        assert torch.is_autocast_enabled("cpu")
        assert (torch.randn(4, 4) @ torch.randn(4, 4)).dtype is torch.bfloat16
    with compute_context(cpu, torch.float32, torch.float32):
        assert not torch.is_autocast_enabled("cpu")


def test_cast_once_linear_equals_autocast_and_follows_weight_changes():
    linear = torch.nn.Linear(8, 5, bias=False).requires_grad_(False)
    head, x = CastOnceLinear(linear, torch.bfloat16), torch.randn(3, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(head(x), linear(x))
        with torch.no_grad():
            linear.weight.mul_(2)  # an in-place change (load_weights) is seen
        assert torch.equal(head(x), linear(x))
    assert head(x).dtype is torch.float32  # outside autocast: the float32 layer itself


@pytest.mark.parametrize("trainable", [False, True])
def test_cast_once_linear_keeps_gradients_flowing(trainable):
    linear = torch.nn.Linear(8, 5, bias=False).requires_grad_(trainable)
    x = torch.randn(3, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        CastOnceLinear(linear, torch.bfloat16)(x).float().sum().backward()
    assert x.grad is not None and (linear.weight.grad is not None) == trainable
