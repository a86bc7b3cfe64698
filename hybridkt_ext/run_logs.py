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
