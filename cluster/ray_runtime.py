"""Starting or joining Ray: embedded local Ray by default, an address to join a cluster."""
from __future__ import annotations

import os
from dataclasses import dataclass

import ray

from cluster.config import ConfigError, check_range, require


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
    """Start the dashboard (and its Ray Jobs server) with the embedded Ray."""
    dashboard_host: str = "127.0.0.1"
    """Where the embedded Ray's dashboard listens: this machine only, unless you open it (e.g. 0.0.0.0)."""
    dashboard_port: int = 8265
    """The embedded Ray's dashboard port."""

    def __post_init__(self):
        require(self.address is None or bool(self.address), "address", self.address,
                "write null for an embedded Ray, or 'auto' or HOST:PORT to join a cluster")
        check_range(self, "num_cpus", "num_gpus", ge=0, none_ok=True)
        check_range(self, "dashboard_port", ge=1)
        require(bool(self.dashboard_host), "dashboard_host", self.dashboard_host,
                "give an address to bind the dashboard to (127.0.0.1: this machine only)")


def ensure_ray(config: RayConfig | None = None) -> None:
    """Start or join Ray once per process, with Ray's token authentication on (Ray's default for the clusters
    ray.init starts; a cluster joined must have it on too: its token is looked up as Ray does)."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        raise ConfigError("RAY_AUTH_MODE=disabled is set: llmrl keeps Ray's token authentication on for every "
                          "cluster it starts or joins; unset RAY_AUTH_MODE (or set it to token)")
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
        dashboard_host=config.dashboard_host,
        dashboard_port=config.dashboard_port,
        configure_logging=False,
    )
