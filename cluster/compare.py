"""`llmrl compare`: learning curves of any runs (any method) overlaid in one PNG, with a summary table.

Runs that share a group (by default the config's `name`: the same config run with several seeds) are drawn as
their mean with the min-max spread shaded. A run's curve is a step function (its last logged value holds until
the next row), so runs logged at different x values average on the union of their x values, over the range
all of the group's runs cover.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from cluster.config import ConfigError, read_yaml
from cluster.metrics import CSV_NAME, read_metrics

Curve = list[tuple[float, float]]


@dataclass(frozen=True)
class GroupCurve:
    """The mean of a group's runs at each x, with the lowest and highest run there."""

    group: str
    runs: list[Path]
    xs: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    finals: list[float]
    """Each run's last value."""


# ---- pure ----------------------------------------------------------------------------------------------------
def value_at(curve: Curve, x: float) -> float:
    """The curve's value at x: the last point at or before x (the curve must start at or before x)."""
    value = math.nan
    for px, py in curve:
        if px > x:
            break
        value = py
    return value


def combine(group: str, runs: list[Path], curves: list[Curve]) -> GroupCurve:
    """Mean, min and max of step-function curves on the union of their x values, where every curve is defined."""
    start, end = max(c[0][0] for c in curves), min(c[-1][0] for c in curves)
    xs = sorted({x for c in curves for x, _ in c if start <= x <= end})
    columns = [[value_at(c, x) for c in curves] for x in xs]
    return GroupCurve(group, runs, xs, [sum(v) / len(v) for v in columns], [min(v) for v in columns],
                      [max(v) for v in columns], [c[-1][1] for c in curves])


def steps_to(curve: GroupCurve, threshold: float) -> float | None:
    """The first x where the group's mean reaches `threshold` (None: never)."""
    return next((x for x, y in zip(curve.xs, curve.mean) if y >= threshold), None)


# ---- runs ----------------------------------------------------------------------------------------------------
def read_curve(run_dir: Path, x: str, y: str) -> Curve:
    """(x, y) of every metrics row that has both, ordered by x."""
    rows = read_metrics(run_dir)
    if rows and (x not in rows[0] or y not in rows[0]):
        raise ConfigError(f"{run_dir / CSV_NAME} has no {x if x not in rows[0] else y!r} column; it has: "
                          f"{', '.join(rows[0])}; choose --x / --y among them")
    points = sorted((row[x], row[y]) for row in rows if row.get(x) is not None and row.get(y) is not None
                    and not math.isnan(row[y]))
    if not points:
        raise ConfigError(f"{run_dir / CSV_NAME} has no row with both {x} and {y} (no episode finished yet?)")
    return points


def group_of(run_dir: Path, key: str) -> str:
    """The run's group: `dir` (each run alone), a dotted key of its stored config (e.g. name, method, ppo.lr), or
    several comma-separated keys (label "key=value, key=value", each key's last part)."""
    if key == "dir":
        return run_dir.name
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} has no config.yaml to group by {key!r}: is it a run directory of llmrl run? "
                          f"(--group-by dir groups by directory)")
    config = read_yaml(path)
    keys = [k.strip() for k in key.split(",")]
    values = [_config_value(config, k, path) for k in keys]
    if len(keys) == 1:
        return values[0]
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in zip(keys, values))


def _config_value(config: Any, key: str, path: Path) -> str:
    value = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ConfigError(f"--group-by {key}: {path} has no such key")
        value = value[part]
    return str(value)


def compare(run_dirs: Sequence[str | Path], x: str = "env_steps", y: str = "success_rate", group_by: str = "name",
            threshold: float | None = None, output: str | Path = "compare.png") -> tuple[list[GroupCurve], str]:
    """Overlay the runs' curves into `output` (PNG); returns the group curves and the summary table."""
    if not run_dirs:
        raise ConfigError("llmrl compare needs at least one run directory")
    groups: dict[str, list[Path]] = {}
    for run in map(Path, run_dirs):
        if not (run / CSV_NAME).is_file():
            raise ConfigError(f"{run} has no {CSV_NAME}: give run directories written by llmrl run")
        groups.setdefault(group_of(run, group_by), []).append(run)
    curves = [combine(name, runs, [read_curve(r, x, y) for r in runs]) for name, runs in groups.items()]
    _plot(curves, x, y, Path(output))
    return curves, summary_table(curves, y, threshold)


def summary_table(curves: list[GroupCurve], y: str, threshold: float | None) -> str:
    """One line per group: runs, final value (mean over runs, with min-max), best of the mean, steps to threshold."""
    header = ["group", "runs", f"final {y}", "best (mean curve)"] + ([f"x to {threshold:g}"] if threshold is not None else [])
    rows = []
    for c in curves:
        final = sum(c.finals) / len(c.finals)
        spread = f" [{min(c.finals):.3g}, {max(c.finals):.3g}]" if len(c.finals) > 1 else ""
        best = max(range(len(c.mean)), key=lambda i: c.mean[i]) if c.mean else None
        row = [c.group, str(len(c.runs)), f"{final:.3g}{spread}",
               "-" if best is None else f"{c.mean[best]:.3g} at {c.xs[best]:g}"]
        if threshold is not None:
            reached = steps_to(c, threshold)
            row.append("never" if reached is None else f"{reached:g}")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows])


def _plot(curves: list[GroupCurve], x: str, y: str, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for c in curves:
        line, = ax.plot(c.xs, c.mean, marker=".", label=f"{c.group} ({len(c.runs)} run{'s' if len(c.runs) > 1 else ''})")
        if len(c.runs) > 1:
            ax.fill_between(c.xs, c.low, c.high, color=line.get_color(), alpha=0.2, step="post")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")


def compare_command(args: Any) -> int:
    """`llmrl compare` (see cluster/cli.py)."""
    curves, table = compare(args.runs, x=args.x, y=args.y, group_by=args.group_by, threshold=args.threshold,
                            output=args.output)
    print(table)
    print(f"llmrl compare: {len(curves)} group(s) of {sum(len(c.runs) for c in curves)} run(s) in {args.output}")
    return 0
