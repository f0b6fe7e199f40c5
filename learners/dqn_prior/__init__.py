"""LLM priors, value-based: DQN-Prior (the LLM proposes k actions, a Q-network reweights them:
sample from softmax(Q / tau + log p_hat_LLM)) and its baseline, DQN over every admissible action."""
