"""`llmrl eval [CHECKPOINT] --suite NAME|FILE`: policies on a named set of tests, as a table with 95% intervals,
a CSV and a grouped bar chart. Two kinds of suite, both data (configs/eval/NAME.yaml, or any YAML path):

- Checkpoint suites (GLAM's generalization set, `glam`): `tests` of {name, env, kwargs}; a GLAM checkpoint plays
  `episodes` per test and seed beside the random and zero-shot rows of the same run (`env: checkpoint` is the
  checkpoint's own training env).
- Run suites (`icpi`, `priors`): `tests` of {name, config, overrides}; every `policies` entry (name -> config
  overrides, e.g. agent=random) is run with `llmrl run` once per seed, and the last `last_episodes` episodes of
  each run are scored (ICPI's regret over a fixed seed set; the priors' success).

Every row: success rate with its 95% Wilson interval, mean return and (ICPI) mean regret with 95% normal
intervals, over all scored episodes of all seeds.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from cluster.config import ConfigError, check_range, from_dict, read_yaml, require

SUITES_DIR = Path(__file__).resolve().parents[1] / "configs" / "eval"
CHECKPOINT_ENV = "checkpoint"
Z95 = 1.959963984540054
"""The 97.5% quantile of the standard normal."""


@dataclass(frozen=True)
class SuiteTest:
    name: str
    env: str = ""
    """Checkpoint suites: a registered env id, or `checkpoint` (the checkpoint's training env)."""
    kwargs: dict = field(default_factory=dict)
    """gymnasium.make keyword arguments (added to the checkpoint's own with env: checkpoint)."""
    config: str = ""
    """Run suites: a run config (any method), relative to the repository or absolute."""
    overrides: tuple[str, ...] = ()
    """Run suites: `--set` overrides of this test (e.g. train.total_env_steps=100)."""

    def __post_init__(self):
        require(bool(self.env) != bool(self.config), "env", self.env,
                f"test {self.name!r}: give `env` (checkpoint suites) or `config` (run suites), one of them")


@dataclass(frozen=True)
class Suite:
    name: str
    tests: tuple[SuiteTest, ...]
    episodes: int = 20
    """Episodes per test and seed."""
    seeds: tuple[int, ...] = (12345,)
    num_envs: int = 4
    greedy: bool = False
    """Argmax actions instead of sampling (GLAM evaluates by sampling)."""
    policies: dict = field(default_factory=dict)
    """Run suites: policy name -> list of config overrides (e.g. {random: [agent=random]})."""
    last_episodes: int = 20
    """Run suites: the episodes scored, the last of each run."""
    plot: Literal["success_rate", "mean_return", "regret"] = "success_rate"
    """The column the bar chart shows."""

    def __post_init__(self):
        check_range(self, "episodes", "num_envs", "last_episodes", ge=1)
        require(bool(self.tests), "tests", self.tests, "list at least one test: {name, env, kwargs} or {name, config}")
        require(bool(self.seeds), "seeds", self.seeds, "list at least one seed")
        names = [t.name for t in self.tests]
        require(len(set(names)) == len(names), "tests", names, "give every test a different name")
        require(len({bool(t.config) for t in self.tests}) == 1, "tests", names,
                "a suite's tests are all env tests (checkpoint suites) or all config tests (run suites)")
        require(not self.runs or bool(self.policies), "policies", self.policies,
                "a run suite lists its policies: {name: [overrides...]}")
        require(all(isinstance(v, (list, tuple)) for v in self.policies.values()), "policies", self.policies,
                "each policy is a list of config overrides, e.g. random: [agent=random]")

    @property
    def runs(self) -> bool:
        """Whether this is a run suite (tests name run configs)."""
        return bool(self.tests[0].config)


@dataclass(frozen=True)
class Row:
    test: str
    env: str
    policy: str
    episodes: int
    seeds: int
    success_rate: float
    success_low: float
    success_high: float
    mean_return: float
    return_low: float
    return_high: float
    regret: float = math.nan
    regret_low: float = math.nan
    regret_high: float = math.nan


# ---- pure ----------------------------------------------------------------------------------------------------
def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a success rate (good at 0 and 1 and for few episodes)."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float, float]:
    """(mean, low, high): the mean with its normal 95% interval (sample standard deviation; 0 wide for n < 2)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = z * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def summarize(test: str, env: str, policy: str, episodes: Sequence[Any], seeds: int) -> Row:
    """A table row from finished episodes (each with .success and .ret, and .regret where known; a success of
    None (not known) gives NaN)."""
    known = [bool(e.success) for e in episodes if e.success is not None]
    low, high = wilson_interval(sum(known), len(known))
    mean, r_low, r_high = mean_interval([float(e.ret) for e in episodes])
    regrets = [float(e.regret) for e in episodes if getattr(e, "regret", None) is not None]
    regret = mean_interval(regrets)
    return Row(test, env, policy, len(episodes), seeds, sum(known) / len(known) if known else math.nan, low, high,
               mean, r_low, r_high, *regret)


# ---- suites --------------------------------------------------------------------------------------------------
def load_suite(name_or_path: str) -> Suite:
    """A suite by name (configs/eval/NAME.yaml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.yaml")))
            raise ConfigError(f"--suite {name_or_path}: no such suite; known: {known} (or give a YAML path)")
    suite = from_dict(Suite, read_yaml(path), where=str(path))
    import envs  # noqa: F401  (registers the ids)
    import gymnasium

    for test in suite.tests:
        if test.config:
            if not config_path(test).is_file():
                raise ConfigError(f"{path}: test {test.name!r}: config {test.config} does not exist")
            continue
        if test.env != CHECKPOINT_ENV and test.env not in gymnasium.registry:
            raise ConfigError(f"{path}: test {test.name!r}: env {test.env!r} is not registered (or write "
                              f"env: {CHECKPOINT_ENV} for the checkpoint's training env)")
    return suite


def resolve_env(test: SuiteTest, training: tuple[str, dict] | None) -> tuple[str, dict]:
    """(env id, kwargs) of a test; `training` is the checkpoint's (id, kwargs), needed by env: checkpoint."""
    if test.env != CHECKPOINT_ENV:
        return test.env, dict(test.kwargs)
    if training is None:
        raise ConfigError(f"test {test.name!r} uses env: {CHECKPOINT_ENV}, which needs a CHECKPOINT to evaluate")
    return training[0], {**training[1], **test.kwargs}


def config_path(test: SuiteTest) -> Path:
    path = Path(test.config)
    return path if path.is_absolute() else SUITES_DIR.parents[1] / path


@dataclass(frozen=True)
class ScoredEpisode:
    """One episode of a run's metrics (success None where the method does not log it)."""

    ret: float
    success: bool | None
    regret: float | None


def run_episodes(run_dir: Path, last: int) -> list[ScoredEpisode]:
    """The last `last` episodes a run logged: its metrics rows that have a `return`."""
    from cluster.metrics import read_metrics

    rows = [r for r in read_metrics(run_dir) if r.get("return") is not None]
    return [ScoredEpisode(r["return"], None if r.get("success") is None else bool(r["success"]), r.get("regret"))
            for r in rows[-last:]]


def run_run_suite(suite: Suite, policies: Sequence[str], work_dir: Path,
                  on_row: Callable[[Row], None] = lambda row: None) -> list[Row]:
    """Every test for every policy: one `llmrl run` per seed (in work_dir), its last episodes scored; `on_row`
    sees each row as it is done."""
    from cluster.experiment import Experiment
    from cluster.methods import load_config

    rows = []
    for test in suite.tests:
        for policy in policies:
            episodes = []
            for seed in suite.seeds:
                overrides = [*test.overrides, *suite.policies[policy], f"train.seed={seed}",
                             f"train.output_dir={work_dir}", f"name={_slug(test.name)}-{_slug(policy)}-{seed}"]
                run_dir = Experiment(load_config(config_path(test), overrides), progress=False).run()
                episodes += run_episodes(run_dir, suite.last_episodes)
            rows.append(summarize(test.name, test.config, policy, episodes, len(suite.seeds)))
            on_row(rows[-1])
    return rows


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def run_suite(suite: Suite, policies: dict[str, Any], training: tuple[str, dict] | None = None,
              episodes: int | None = None, on_row: Callable[[Row], None] = lambda row: None) -> list[Row]:
    """Every test for every policy (name -> scorer), `episodes` (default the suite's) per seed; `on_row` sees
    each row as it is done."""
    from cluster.eval_command import play_episodes

    per_seed = episodes or suite.episodes
    rows = []
    for test in suite.tests:
        env_id, kwargs = resolve_env(test, training)
        for policy, scorer in policies.items():
            finished = [e for seed in suite.seeds
                        for e in play_episodes(scorer, env_id, per_seed, num_envs=suite.num_envs, seed=seed,
                                               greedy=suite.greedy, env_kwargs=kwargs)]
            rows.append(summarize(test.name, env_id, policy, finished, len(suite.seeds)))
            on_row(rows[-1])
    return rows


def write_csv(rows: Sequence[Row], path: Path) -> None:
    fields = list(Row.__dataclass_fields__)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: getattr(r, k) for k in fields} for r in rows)


def format_table(rows: Sequence[Row]) -> str:
    with_regret = any(not math.isnan(r.regret) for r in rows)
    header = ["test", "policy", "success [95% CI]", "mean return [95% CI]"] + (
        ["mean regret [95% CI]"] if with_regret else []) + ["episodes"]
    lines = [[r.test, r.policy, _ci(r.success_rate, r.success_low, r.success_high),
              _ci(r.mean_return, r.return_low, r.return_high)]
             + ([_ci(r.regret, r.regret_low, r.regret_high)] if with_regret else [])
             + [f"{r.episodes} ({r.seeds} seeds)"] for r in rows]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *lines])


def _ci(value: float, low: float, high: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f} [{low:.2f}, {high:.2f}]"


def plot_rows(rows: Sequence[Row], path: Path, title: str, column: str = "success_rate") -> None:
    """A grouped bar chart of `column` (success_rate, mean_return or regret): one group per test, one bar per
    policy, 95% intervals as error bars."""
    low_key, high_key = {"success_rate": ("success_low", "success_high"), "mean_return": ("return_low", "return_high"),
                         "regret": ("regret_low", "regret_high")}[column]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tests = list(dict.fromkeys(r.test for r in rows))
    policies = list(dict.fromkeys(r.policy for r in rows))
    fig = Figure(figsize=(max(6.0, 1.3 * len(tests) * max(1, len(policies)) / 2), 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width = 0.8 / len(policies)
    for k, policy in enumerate(policies):
        mine = {r.test: r for r in rows if r.policy == policy}
        xs = [i + (k - (len(policies) - 1) / 2) * width for i in range(len(tests))]
        heights = [_zero_nan(getattr(mine[t], column)) if t in mine else 0.0 for t in tests]
        errors = [[_zero_nan(h - getattr(mine[t], low_key)) if t in mine else 0.0 for t, h in zip(tests, heights)],
                  [_zero_nan(getattr(mine[t], high_key) - h) if t in mine else 0.0 for t, h in zip(tests, heights)]]
        ax.bar(xs, heights, width, yerr=errors, capsize=3, label=policy)
    ax.set_xticks(range(len(tests)), tests, rotation=20, ha="right")
    ax.set_ylabel(f"{column.replace('_', ' ')} (95% CI)")
    if column == "success_rate":
        ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend()
    fig.savefig(path, format="png")


def _zero_nan(value: float) -> float:
    return 0.0 if math.isnan(value) else value
