"""DQN-Prior hyperparameters (the reference's in the comments) and the run config."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from actors.pool_config import PoolConfig
from cluster.config import check_env_id, check_range, require
from cluster.ray_runtime import RayConfig
from learners.algorithm import ScheduleConfig
from learners.dqn_prior.proposals import ProposalSampler
from policies.config import BackendConfig
from policies.text_encoder import EncoderConfig


@dataclass(frozen=True)
class QNetworkConfig:
    """The Q-network and how it learns (shared by DQN-Prior and CQL-Prior; the reference's values)."""

    gamma: float = 0.99
    lr: float = 5e-4
    """AdamW learning rate of the Q-network's MLP (reference 5e-4)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """MLP widths on the frozen encoder's features (reference 64, 64)."""
    q_features: Literal["joint", "separate"] = "joint"
    """The MLP's input. joint: the reference's encoding of "Observation: s, Action: a." (one sentence vector, in
    which a long observation drowns the action); separate: the encodings of s and of a, concatenated (as DRRN)."""
    batch_size: int = 64
    max_grad_norm: float = 1.0
    double_dqn: bool = True
    """Target: Q_target at the online network's argmax over the s' candidates (else max of Q_target)."""
    target_update: Literal["soft", "hard"] = "soft"
    target_tau: float = 0.005
    """Soft update rate (reference 0.005)."""
    target_every: int = 20
    """Hard update: copy the online network every this many updates (reference 20)."""

    def __post_init__(self):
        check_range(self, "batch_size", "target_every", "hidden_sizes", ge=1)
        check_range(self, "lr", "max_grad_norm", gt=0)
        check_range(self, "gamma", "target_tau", gt=0, le=1)


@dataclass(frozen=True)
class ProposalConfig:
    """How the LLM proposes actions (learners/dqn_prior/proposals.py; reference k 5, temperature 1, top_p 1)."""

    k: int = 5
    """Proposals per state."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 10
    max_resamples: int = 2
    """Extra generations for proposals that matched no admissible command."""
    match_threshold: float = 0.8
    """Fuzzy matching: the least difflib similarity ratio accepted."""

    def __post_init__(self):
        check_range(self, "k", "max_new_tokens", ge=1)
        check_range(self, "temperature", gt=0)
        check_range(self, "top_p", gt=0, le=1)
        check_range(self, "match_threshold", ge=0, le=1)
        check_range(self, "max_resamples", ge=0)

    def sampler(self, scorer) -> ProposalSampler:
        return ProposalSampler(scorer, self.k, self.temperature, self.top_p, self.max_new_tokens,
                               self.max_resamples, self.match_threshold)


@dataclass(frozen=True)
class DQNPriorConfig(QNetworkConfig):
    """How the agent acts and learns (the Q-network's fields come from QNetworkConfig)."""

    use_prior: bool = True
    """Act among the LLM's proposals, weighted by the prior; false: the DQN baseline over every
    admissible action (no LLM)."""
    prior: Literal["proposals", "exact"] = "proposals"
    """proposals: p_hat from the k sampled proposals (counts; see the run's `proposals` section); exact: p_LLM of
    every admissible action, scored by the scorer pool (candidates = all admissible actions)."""
    tau: float = 0.1
    """Temperature of Q in the posterior softmax(Q / tau + log p_LLM) (reference 0.1)."""
    epsilon: float = 0.0
    """Probability of a uniformly random candidate instead of a posterior draw."""
    replay_capacity: int = 4000
    learning_starts: int = 64
    """Transitions collected before the first update."""
    updates_per_episode: int = 10
    """Gradient steps after each episode."""

    def __post_init__(self):
        super().__post_init__()
        check_range(self, "replay_capacity", "updates_per_episode", ge=1)
        check_range(self, "tau", gt=0)
        check_range(self, "epsilon", ge=0, le=1)
        check_range(self, "learning_starts", ge=0)


@dataclass(frozen=True)
class PriorEnvConfig:
    """The text env the agent plays."""

    id: str = "llmrl/FrozenLake4x4-v0"
    """A registered text env id (info carries mission, descriptions, actions)."""
    kwargs: dict = field(default_factory=dict)
    """Further keyword arguments for gymnasium.make."""


@dataclass(frozen=True)
class PriorTrainConfig(ScheduleConfig):
    """How long to run (one iteration = one episode), where to write, how often to checkpoint."""

    total_env_steps: int = 2000
    success_window: int = 20
    """Success rate and mean return are over the last this many episodes."""

    def __post_init__(self):
        super().__post_init__()
        check_range(self, "success_window", ge=1)


@dataclass(frozen=True)
class DQNPriorRunConfig:
    """A DQN-Prior (or DQN baseline) run: the env, the agent, the LLM prior and where it runs, the schedule."""

    method: Literal["dqn_prior"] = "dqn_prior"
    """The method this config runs (see cluster/methods.py)."""
    name: str = "dqn_prior"
    """Run name: outputs go to train.output_dir/name."""
    env: PriorEnvConfig = field(default_factory=PriorEnvConfig)
    dqn: DQNPriorConfig = field(default_factory=DQNPriorConfig)
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    """The LLM that proposes (and, with prior: exact, scores) actions."""
    pool: PoolConfig = field(default_factory=PoolConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    use_ray: bool = True
    """Ask the LLM through a Ray scorer pool (false: in-process). The DQN baseline starts no Ray."""
    train: PriorTrainConfig = field(default_factory=PriorTrainConfig)

    def __post_init__(self):
        require(self.dqn.use_prior or self.dqn.prior == "proposals", "dqn.prior", self.dqn.prior,
                "only matters with dqn.use_prior: true")
        check_env_id(self.env.id)
