"""Gymnasium ids of the six ICPI envs (namespace llmrl/), registered on `import envs`."""
from __future__ import annotations

import gymnasium

SPECS: dict[str, tuple[str, dict]] = {
    "chain": ("envs.icpi.chain:Chain", {}),
    "distractor-chain": ("envs.icpi.chain:Chain", {"distractor": True}),
    "maze": ("envs.icpi.maze:Maze", {}),
    "mini-catch": ("envs.icpi.catch:MiniCatch", {}),
    "mini-invaders": ("envs.icpi.invaders:MiniInvaders", {}),
    "point-mass": ("envs.icpi.point_mass:PointMass", {}),
}
"""Env name -> (entry point, keyword arguments); `gymnasium.make(id, hint=False)` turns hints off."""


def icpi_env_id(name: str) -> str:
    """'llmrl/icpi-chain-v0'."""
    return f"llmrl/icpi-{name}-v0"


ICPI_ENV_IDS = tuple(icpi_env_id(name) for name in SPECS)


def register_icpi() -> None:
    """Register every ICPI id with Gymnasium (registered ids are left alone)."""
    for name, (entry_point, kwargs) in SPECS.items():
        if icpi_env_id(name) not in gymnasium.registry:
            gymnasium.register(id=icpi_env_id(name), entry_point=entry_point, kwargs=kwargs)
