"""The six ICPI envs (specs/icpi.md): true dynamics plus the text an LLM reads and writes."""
from envs.icpi.base import IcpiEnv, TimeStep, TransitionEnv
from envs.icpi.catch import MiniCatch
from envs.icpi.chain import Chain
from envs.icpi.invaders import MiniInvaders
from envs.icpi.maze import Maze
from envs.icpi.point_mass import PointMass
from envs.icpi.registry import ICPI_ENV_IDS, icpi_env_id, register_icpi

__all__ = ["Chain", "ICPI_ENV_IDS", "IcpiEnv", "Maze", "MiniCatch", "MiniInvaders", "PointMass", "TimeStep",
           "TransitionEnv", "icpi_env_id", "register_icpi"]
