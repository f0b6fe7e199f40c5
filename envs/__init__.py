"""Text environments with the Gymnasium API; importing this package registers the llmrl/ ids."""
from envs.icpi.registry import ICPI_ENV_IDS, register_icpi
from envs.registry import ENV_IDS, register_all

register_all()
register_icpi()

__all__ = ["ENV_IDS", "ICPI_ENV_IDS"]
