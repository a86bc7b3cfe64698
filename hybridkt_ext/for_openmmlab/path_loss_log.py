"""alpha and the path losses of an OpenMMLab run: every step kept for the plot, and the last
iteration logged.

alpha, L1, L2 and L3 reach the MessageHub through the loss dict (mmengine's RuntimeInfoHook
stores every ``log_vars`` entry as ``train/<key>``), so LoggerHook, ``vis_data/scalars.json`` and
TensorBoard show them at every logging interval with no code here. What mmengine does not do:
log the last iteration when the interval skips it (a 4-iteration smoke run logs nothing with
the default interval of 50, where detectron2's writers always write the last iteration), and
keep every step's values for the plot.
"""
from __future__ import annotations

from pathlib import Path

from mmengine.hooks import LoggerHook

from ..plotting import PLOT_NAME, fresh_values, is_recorded, plot_alpha_and_path_losses


class PathLossLog:
    """The rows of one run, and the two things done with them."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.teacher_names: tuple[str, ...] = ()  # several teachers: their names, in order
        self._logger: LoggerHook | None = None
        self._interval: int | None = None

    def record(self, runner) -> bool:
        """Keeps this iteration's alpha and path losses; True if the step logged any."""
        scalars = runner.message_hub.log_scalars
        row = {k[len("train/"):]: float(v.current()) for k, v in scalars.items()
               if k.startswith("train/") and is_recorded(k[len("train/"):])}
        row = fresh_values(row, self.teacher_names)
        if row:
            self.rows.append({"step": runner.iter + 1, **row})
        return bool(row)

    def log_the_last_iteration(self, runner, batch_idx: int) -> None:
        """Makes mmengine's LoggerHook log this (the last) iteration, whatever its interval.

        LoggerHook decides with ``every_n_inner_iters(batch_idx, interval)``; for this one call
        its interval is ``batch_idx + 1``, which every iteration count is a multiple of, so its
        own code writes the log line and the scalars (once, also where it would have logged
        anyway). Call it before LoggerHook's ``after_train_iter`` (a higher-priority hook), and
        ``restore_interval`` after training.
        """
        logger = next((h for h in runner.hooks if isinstance(h, LoggerHook)), None)
        if logger is None:
            return
        self._logger, self._interval = logger, logger.interval
        logger.interval = batch_idx + 1

    def restore_interval(self) -> None:
        if self._logger is not None:
            self._logger.interval, self._logger = self._interval, None

    def plot(self, work_dir: str | Path) -> Path | None:
        """``PLOT_NAME`` in the work dir, when the run balanced hybrid paths (an alpha)."""
        if not any(k.partition("/")[0] == "hkt_alpha" for row in self.rows for k in row):
            return None
        return plot_alpha_and_path_losses({"hybrid forward": self.rows},
                                          Path(work_dir) / PLOT_NAME)
