"""Reading what a finished run logged, for the tools and experiments that compare runs."""
from __future__ import annotations

import json
from pathlib import Path


def read_mmengine_scalars(work_dir: str | Path) -> list[dict]:
    """Every row of the newest ``<work_dir>/<timestamp>/vis_data/scalars.json`` (mmengine's
    LocalVisBackend, one JSON object per line); [] when the work dir holds none."""
    files = sorted(Path(work_dir).glob("*/vis_data/scalars.json"))
    if not files:
        return []
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]


def mmengine_training_seconds(work_dir: str | Path, iters: int) -> float:
    """Seconds the ``iters`` training iterations of a run took, from its scalars log.

    mmengine logs ``time`` (seconds per iteration, data loading included, averaged over its
    log processor's window) every logging interval; each logged value stands for the
    iterations since the previous log, scaled to ``iters`` when the last ones were not logged.
    Runner start-up, validation and checkpoint writing are not in it.

    Raises:
        ValueError: the run logged no iteration time.
    """
    rows = [r for r in read_mmengine_scalars(work_dir) if "time" in r and "step" in r]
    if not rows:
        raise ValueError(f"{work_dir} holds no scalars.json rows with an iteration time.")
    seconds, previous = 0.0, 0
    for row in sorted(rows, key=lambda r: r["step"]):
        seconds += row["time"] * (row["step"] - previous)
        previous = row["step"]
    return seconds * iters / previous
