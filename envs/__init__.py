"""Text environments with the Gymnasium API; importing this package registers the llmrl/ ids."""
from envs.registry import ENV_IDS, register_all

register_all()

__all__ = ["ENV_IDS"]
