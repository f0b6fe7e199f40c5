"""CQL-Prior's run config (the spec's values as defaults)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from actors.pool_config import PoolConfig
from cluster.config import check_env_id, check_range, require
from cluster.ray_runtime import RayConfig
from learners.algorithm import ScheduleConfig
from learners.dqn_prior.config import PriorEnvConfig, ProposalConfig, QNetworkConfig
from policies.config import BackendConfig
from policies.text_encoder import EncoderConfig


@dataclass(frozen=True)
class CQLConfig(QNetworkConfig):
    """How CQL(-Prior) learns from the dataset and how its greedy policy is evaluated."""

    dataset: str = "datasets/frozenlake_random"
    """A dataset directory written by `llmrl collect` (learners/cql_prior/dataset.py)."""
    use_prior: bool = True
    """CQL-Prior: logsumexp over the LLM's distinct proposals at s plus the data action, target max over the
    proposals at s', act on the posterior over proposals. false: plain CQL over every admissible action."""
    proposal_source: Literal["dataset", "llm"] = "dataset"
    """dataset: the proposals stored in the dataset (the LLM is asked only for states without any);
    llm: ask the LLM afresh for every state of the dataset (once per prompt, cached)."""
    prior: Literal["proposals", "exact"] = "proposals"
    """With use_prior, what the candidates and p_LLM at a state are. proposals: the LLM's k sampled proposals
    (counts); exact: the `exact_top_k` admissible actions the LLM scores highest (every admissible action scored
    by the pool once per state), weighted by their p_LLM: deterministic proposals, no generation."""
    exact_top_k: int = 0
    """prior: exact: how many of the highest-scored actions are the candidates (0: every admissible action)."""
    cql_coef: float = 5.0
    """lambda, the weight of the conservative term (spec 5.0)."""
    standardize_features: bool = False
    """Shift and scale the encoder's features by their mean and std over every (state, candidate) text of the
    dataset (QLearner.standardize) before the MLP. false: the raw features, as the reference (on FrozenLake's
    nearly collinear features neither CQL nor CQL-Prior then learns: BENCHMARKS.md, "LLM priors")."""
    batch_size: int = 128
    double_dqn: bool = False
    """The spec's target is the plain max of Q_target over the s' candidates."""
    updates_per_iteration: int = 100
    """Gradient steps per iteration (each iteration ends with an evaluation)."""
    tau: float = 0.1
    """Evaluation acts on Q / tau + log p_hat_LLM over the proposals (with use_prior; else Q / tau)."""
    eval_policy: Literal["greedy", "sample"] = "greedy"
    """greedy: its argmax (the reference's evaluation); sample: a draw from its softmax, as DQN-Prior acts
    (a Q-network on near-identical text features can tie actions so that its argmax walks in a loop)."""
    eval_episodes: int = 5
    """Evaluation episodes per iteration (env seeds train.seed + 1000 + i, the same every iteration)."""

    def __post_init__(self):
        super().__post_init__()
        require(bool(self.dataset), "dataset", self.dataset, "must name a dataset directory")
        check_range(self, "updates_per_iteration", "eval_episodes", ge=1)
        check_range(self, "tau", gt=0)
        check_range(self, "cql_coef", ge=0)
        check_range(self, "exact_top_k", ge=0)


@dataclass(frozen=True)
class CQLTrainConfig(ScheduleConfig):
    """How long to train (in gradient updates), where to write, how often to checkpoint."""

    total_updates: int = 10_000
    """Stop after this many gradient steps (reference 10k)."""
    total_env_steps: int = 10_000
    """Not set by hand: offline training takes no env steps, so this is total_updates (the progress bar's total)."""

    def __post_init__(self):
        check_range(self, "total_updates", ge=1)
        object.__setattr__(self, "total_env_steps", self.total_updates)
        super().__post_init__()


@dataclass(frozen=True)
class CQLRunConfig:
    """A CQL-Prior (or plain CQL) run: the dataset, the learner, the LLM prior and where it runs, the schedule."""

    method: Literal["cql_prior"] = "cql_prior"
    """The method this config runs (see cluster/methods.py)."""
    name: str = "cql_prior"
    """Run name: outputs go to train.output_dir/name."""
    cql: CQLConfig = field(default_factory=CQLConfig)
    env: PriorEnvConfig | None = None
    """The env the greedy policy is evaluated on; null: the dataset's env (its meta.json)."""
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    """The LLM that proposes actions (with cql.use_prior)."""
    pool: PoolConfig = field(default_factory=PoolConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    use_ray: bool = True
    """Ask the LLM through a Ray scorer pool (false: in-process). Plain CQL starts no Ray."""
    train: CQLTrainConfig = field(default_factory=CQLTrainConfig)

    def __post_init__(self):
        if self.env is not None:
            check_env_id(self.env.id)
