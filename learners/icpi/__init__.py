"""ICPI: in-context policy iteration (specs/icpi.md) and its baselines, as plain classes."""
