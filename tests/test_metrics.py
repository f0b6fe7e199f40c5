"""MetricsLogger: CSV rows and widened header, resume, TensorBoard scalars, learning-curve plots."""
from __future__ import annotations

import math
import time

import pytest

from cluster.metrics import MetricsLogger, plot_curves, read_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_rows_are_flushed_and_a_new_metric_widens_the_header(tmp_path):
    logger = MetricsLogger(tmp_path, tensorboard=False)
    logger.log(0, {"loss": 1.5})
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["step,loss", "0,1.5"]  # flushed, not closed
    logger.log(1, {"loss": 1.25, "kl": 0.5})
    logger.log(2, {"kl": 0.25})
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["step,loss,kl", "0,1.5,", "1,1.25,0.5", "2,,0.25"]
    logger.close()
    assert read_metrics(tmp_path) == [
        {"step": 0, "loss": 1.5, "kl": None},
        {"step": 1, "loss": 1.25, "kl": 0.5},
        {"step": 2, "loss": None, "kl": 0.25},
    ]
    assert not (tmp_path / "tensorboard").exists()


def test_non_finite_values_are_written_as_is(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(3, {"a": float("nan"), "b": float("inf"), "c": -float("inf")})
    assert (tmp_path / "metrics.csv").read_text().splitlines()[1] == "3,nan,inf,-inf"
    [row] = read_metrics(tmp_path)
    assert math.isnan(row["a"]) and row["b"] == math.inf and row["c"] == -math.inf


def test_a_resumed_run_appends_to_its_curve(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(0, {"ret": 1.0})
        logger.log(1, {"ret": 2.0})
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(2, {"ret": 3.0, "len": 7.0})
    assert read_metrics(tmp_path) == [
        {"step": 0, "ret": 1.0, "len": None},
        {"step": 1, "ret": 2.0, "len": None},
        {"step": 2, "ret": 3.0, "len": 7.0},
    ]


def test_resuming_from_a_checkpoint_drops_the_rows_logged_after_it(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with MetricsLogger(tmp_path) as logger:
        for step in range(4):  # steps 2 and 3 were logged, then the run died before checkpointing them
            logger.log(step, {"ret": float(step)})
    # TensorBoard reads event files in name order, and names begin with the creation second (then a
    # per-process counter, which sorts 10 before 9): a real resume starts seconds later.
    time.sleep(1.1)
    with MetricsLogger(tmp_path, resume_after=1) as logger:
        logger.log(2, {"ret": 20.0})
    assert [(r["step"], r["ret"]) for r in read_metrics(tmp_path)] == [(0, 0.0), (1, 1.0), (2, 20.0)]
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("ret")] == [(0, 0.0), (1, 1.0), (2, 20.0)]


def test_bad_metrics_are_refused_with_the_reason(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        with pytest.raises(ValueError, match="'step' is reserved"):
            logger.log(0, {"step": 1.0})
        with pytest.raises(ValueError, match="'name' must be a number"):
            logger.log(0, {"name": "abc"})
    with pytest.raises(ValueError, match="closed"):
        logger.log(1, {"x": 1.0})
    with pytest.raises(FileNotFoundError, match="no metrics"):
        read_metrics(tmp_path / "elsewhere")


def test_scalars_reach_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with MetricsLogger(tmp_path) as logger:
        logger.log(5, {"mean_return": 0.75})
        logger.log(6, {"mean_return": 1.0})
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("mean_return")] == [(5, 0.75), (6, 1.0)]


def test_plot_curves_skips_missing_values(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(0, {"env_steps": 0, "success_rate": 0.0, "mean_return": 0.1})
        logger.log(1, {"env_steps": 128, "success_rate": 0.5})
        logger.log(2, {"env_steps": 256, "success_rate": 0.75, "mean_return": 0.9})
    path = plot_curves(tmp_path, x="env_steps", ys=["success_rate", "mean_return"])
    assert path == tmp_path / "curves.png"
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_plot_curves_with_a_single_row_and_a_chosen_path(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(0, {"mean_return": 0.5})
    path = plot_curves(tmp_path, x="step", ys=["mean_return"], path=tmp_path / "one.png")
    assert path == tmp_path / "one.png"
    assert path.stat().st_size > len(PNG_SIGNATURE)
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_plot_curves_names_a_column_that_never_appears(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(0, {"mean_return": 0.5})
    with pytest.raises(ValueError, match=r"\['success_rate'\] never appear"):
        plot_curves(tmp_path, x="step", ys=["mean_return", "success_rate"])
    assert not (tmp_path / "curves.png").exists()
