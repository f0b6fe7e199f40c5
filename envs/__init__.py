"""Text environments with the Gymnasium API; importing this package registers the llmrl/ ids."""
from envs.frozenlake_text import register_frozenlake
from envs.icpi.registry import ICPI_ENV_IDS, register_icpi
from envs.overcooked import register_overcooked
from envs.registry import ENV_IDS, register_all
from envs.textworld_games import register_textworld

register_all()
register_icpi()
register_frozenlake()
register_textworld()
register_overcooked()


def registered_ids() -> list[str]:
    """Every registered llmrl/ env id, sorted (for error messages)."""
    import gymnasium

    return sorted(k for k in gymnasium.registry if k.startswith("llmrl/"))


__all__ = ["ENV_IDS", "ICPI_ENV_IDS", "registered_ids"]
