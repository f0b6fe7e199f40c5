"""LLM priors, offline: CQL-Prior (conservative Q-learning whose logsumexp and target run over the LLM's
proposals) and plain CQL, trained on datasets written by `llmrl collect`."""
