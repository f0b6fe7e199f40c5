"""Training metrics of one run: a CSV (always), TensorBoard scalars (optional), learning-curve plots.

Layout under a run dir: `metrics.csv` (columns `step` + every metric name seen, in order of first
appearance; a cell is empty where a row lacks that metric) and `tensorboard/` (event files).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from types import TracebackType

CSV_NAME = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"


class MetricsLogger:
    """Appends one row of scalars per step to `run_dir/metrics.csv` and to TensorBoard.

    On a run dir that already has a metrics.csv (a resumed run) the earlier rows are kept and new
    rows are appended after them; `resume_after` (the step of the checkpoint resumed from) drops the
    rows logged after it, in the CSV and in TensorBoard, so that steps redone after an interruption
    appear once. Every row is flushed as it is written.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, resume_after: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.run_dir / CSV_NAME
        self._columns = _read_header(self.csv_path)
        if resume_after is not None and self._columns:
            self._rewrite([row for row in _read_rows(self.csv_path) if int(row["step"]) <= resume_after])
        self._file = self.csv_path.open("a", newline="")
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_after is None else resume_after + 1
            self._writer = SummaryWriter(log_dir=str(self.run_dir / TENSORBOARD_DIR), purge_step=purge)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record `metrics` at `step`; a metric name not seen before widens the CSV header."""
        if self._file.closed:
            raise ValueError(f"MetricsLogger for {self.run_dir} is closed; create a new one to log again")
        if "step" in metrics:
            raise ValueError("'step' is reserved for the step column; pass it as log(step, ...), not as a metric")
        values = {name: _as_float(name, value) for name, value in metrics.items()}
        new = [name for name in values if name not in self._columns]
        if new:
            self._widen(new)
        row = [str(int(step))] + [repr(values[c]) if c in values else "" for c in self._columns[1:]]
        csv.writer(self._file).writerow(row)
        self._file.flush()
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(name, value, int(step))
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the CSV and the TensorBoard writer; safe to call twice."""
        self._file.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _widen(self, new: list[str]) -> None:
        """Rewrite the CSV with `new` columns appended to the header (atomically), then reopen it."""
        self._file.close()
        rows = _read_rows(self.csv_path) if self._columns else []
        self._columns = (self._columns or ["step"]) + new
        self._rewrite(rows)
        self._file = self.csv_path.open("a", newline="")

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        """Replace the CSV with the current header and `rows` (atomically)."""
        tmp = self.csv_path.with_name(f".{CSV_NAME}.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.csv_path)


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of `run_dir/metrics.csv`: `step` as int, metrics as floats, empty cells as None."""
    path = Path(run_dir) / CSV_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no metrics at {path}; log some with MetricsLogger({run_dir!s}) first")
    return [{name: _parse_cell(name, cell) for name, cell in row.items()} for row in _read_rows(path)]


def plot_curves(run_dir: Path, x: str, ys: list[str], path: Path | None = None) -> Path:
    """Plot each metric in `ys` against `x` (one subplot each) into a PNG; returns its path.

    Rows where `x` or the plotted metric is missing are skipped. Default path: `run_dir/curves.png`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    if not ys:
        raise ValueError("plot_curves needs at least one metric in ys, e.g. ys=['mean_return']")
    rows = read_metrics(run_dir)
    columns = _read_header(run_dir / CSV_NAME)
    missing = [name for name in [x, *ys] if name not in columns]
    if missing:
        raise ValueError(f"metric(s) {missing} never appear in {run_dir / CSV_NAME}; available: {columns}")
    fig = Figure(figsize=(6, 2.5 * len(ys)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(ys), 1, sharex=True, squeeze=False)[:, 0]
    for ax, y in zip(axes, ys):
        points = [(row[x], row[y]) for row in rows if row[x] is not None and row[y] is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".")
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel(x)
    fig.suptitle(run_dir.resolve().name)
    path = Path(path) if path is not None else run_dir / "curves.png"
    fig.savefig(path, format="png")
    return path


def _as_float(name: str, value: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"metric {name!r} must be a number (or a 0-d tensor), got {value!r}") from e


def _parse_cell(name: str, cell: str | None) -> int | float | None:
    if cell in ("", None):
        return None
    return int(cell) if name == "step" else float(cell)


def _read_header(path: Path) -> list[str]:
    """The CSV's header ([] for a missing or empty file); it must start with `step`."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        header = next(csv.reader(f), [])
    if header and header[0] != "step":
        raise ValueError(
            f"{path} is not a metrics CSV (first column {header[0]!r}, not 'step'); use another run dir"
        )
    return header


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
