"""Shared fixtures: the real bundled model, loaded once; a real local Ray, started once."""
from __future__ import annotations

import pytest

from policies.config import BackendConfig


@pytest.fixture(scope="session")
def backend():
    from policies.transformers_backend import TransformersBackend

    return TransformersBackend(BackendConfig())


@pytest.fixture(scope="session")
def ray_cluster():
    """An embedded local Ray with 4 logical CPUs (enough for 3 one-CPU workers on a 2-core machine)."""
    import ray

    from cluster.ray_runtime import RayConfig, ensure_ray

    ensure_ray(RayConfig(num_cpus=4))
    yield
    ray.shutdown()
