"""Overlays alpha and the path losses of several runs (e.g. hybrid against a baseline).

    hybridkt-plot-alpha WORK_DIR [WORK_DIR ...] --out alpha.png

A work dir is an mmseg run (``<work_dir>/<timestamp>/vis_data/scalars.json``) or a detectron2
run (``<output_dir>/metrics.json``). Runs without alpha (no teacher, FitNet, AT) contribute their
student-path loss hkt_L3.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hybridkt_ext.plotting import plot_alpha_and_path_losses
from hybridkt_ext.tool_errors import add_debug_flag, run_tool

KEYS = ("hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3")


def read_rows(work_dir: Path) -> list[dict]:
    """The logged rows with any of KEYS, with their ``step``.

    Raises:
        FileNotFoundError: the folder holds no mmseg or detectron2 scalars.
    """
    mmseg = sorted(work_dir.glob("*/vis_data/scalars.json"))
    files = mmseg[-1:] or ([work_dir / "metrics.json"] if (work_dir / "metrics.json").exists()
                           else [])
    if not files:
        raise FileNotFoundError(f"{work_dir}: no */vis_data/scalars.json (mmseg) or "
                                "metrics.json (detectron2) in it.")
    rows = []
    for line in files[0].read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        values = {k: row[k] for k in KEYS if k in row}
        if values:
            rows.append({"step": row.get("step", row.get("iteration")), **values})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("alpha_and_path_losses.png"))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    def plot() -> int:
        if args.out.exists() and not args.overwrite:
            raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it.")
        runs = {str(d): read_rows(d) for d in args.work_dirs}
        print(plot_alpha_and_path_losses(runs, args.out, overwrite=args.overwrite))
        return 0

    return run_tool("plot_alpha", plot, args.debug)


if __name__ == "__main__":
    sys.exit(main())
