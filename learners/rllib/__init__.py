"""RLlib baselines on the algorithm contract (`method: rllib`): symbolic PPO / DQN on the same tasks."""
