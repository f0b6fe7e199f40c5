"""GLAM: the LLM as the policy over text actions, trained with PPO and a value head."""
