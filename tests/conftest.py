"""Shared fixtures: the real bundled model, loaded once; a real local Ray, started once."""
from __future__ import annotations

import pytest

from policies.config import BackendConfig


@pytest.fixture(scope="session")
def backend():
    """The bundled model in float32 (exactness against the naive reference holds there)."""
    from policies.transformers_backend import TransformersBackend

    return TransformersBackend(BackendConfig(dtype="float32"))


@pytest.fixture(scope="session")
def backend_bf16():
    """The bundled model under mixed precision: bf16 compute over fp32 weights (as a learner holds them)."""
    from policies.transformers_backend import TransformersBackend

    return TransformersBackend(BackendConfig(dtype="bfloat16"))


@pytest.fixture(scope="session")
def ray_cluster():
    """An embedded local Ray with 4 logical CPUs (enough for 3 one-CPU workers on a 2-core machine)."""
    import ray

    from cluster.ray_runtime import RayConfig, ensure_ray

    ensure_ray(RayConfig(num_cpus=4))
    yield
    ray.shutdown()
