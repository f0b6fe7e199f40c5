"""Starting or joining Ray: embedded local Ray by default, an address to join a cluster."""
from __future__ import annotations

import os
from dataclasses import dataclass

import ray

from cluster.config import check_range, require


@dataclass(frozen=True)
class RayConfig:
    """Where the actors run."""

    address: str | None = None
    """None: start an embedded local Ray sized to this machine; 'auto' or HOST:PORT: join that cluster."""
    num_cpus: int | None = None
    """Logical CPUs of the embedded Ray (None: this machine's cores). Ignored when joining."""
    num_gpus: int | None = None
    """GPUs of the embedded Ray (None: detected). Ignored when joining."""
    dashboard: bool = False
    """Start the dashboard (bound to 127.0.0.1) with the embedded Ray."""

    def __post_init__(self):
        require(self.address is None or bool(self.address), "address", self.address,
                "write null for an embedded Ray, or 'auto' or HOST:PORT to join a cluster")
        check_range(self, "num_cpus", "num_gpus", ge=0, none_ok=True)


def ensure_ray(config: RayConfig | None = None) -> None:
    """Start or join Ray once per process. Ray's token authentication is left as Ray sets it (on)."""
    if ray.is_initialized():
        return
    config = config or RayConfig()
    address = config.address or os.environ.get("RAY_ADDRESS")  # a Ray Job's entrypoint gets RAY_ADDRESS
    if address is not None:
        ray.init(address=address)
        return
    ray.init(
        num_cpus=config.num_cpus,
        num_gpus=config.num_gpus,
        include_dashboard=config.dashboard,
        dashboard_host="127.0.0.1",
        configure_logging=False,
    )
