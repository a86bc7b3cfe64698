"""Overlays alpha and the path losses of several runs (e.g. hybrid against a baseline).

    hybridkt-plot-alpha WORK_DIR [WORK_DIR ...] --out alpha.png

A work dir is an mmseg run (``<work_dir>/<timestamp>/vis_data/scalars.json``) or a detectron2
run (``<output_dir>/metrics.json``). Runs without alpha (no teacher, FitNet, AT) contribute their
student-path loss hkt_L3. ``--out`` is never a run log, nor where one would be read from
(``--overwrite`` or not, through links too).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hybridkt_ext.core.output_guard import OutputIsInputError, refuse_writing_onto_inputs
from hybridkt_ext.plotting import PLOT_NAME, plot_alpha_and_path_losses
from hybridkt_ext.tool_errors import add_debug_flag, run_tool

KEYS = ("hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3")


def run_logs(work_dir: Path) -> list[Path]:
    """The scalars logs in ``work_dir`` a plot may read; the last is the one it reads.

    Raises:
        FileNotFoundError: the folder holds no mmseg or detectron2 scalars.
    """
    logs = sorted(work_dir.glob("*/vis_data/scalars.json"))
    if (work_dir / "metrics.json").exists():
        logs.insert(0, work_dir / "metrics.json")
    if not logs:
        raise FileNotFoundError(f"{work_dir}: no */vis_data/scalars.json (mmseg) or "
                                "metrics.json (detectron2) in it.")
    return logs


def read_rows(work_dir: Path) -> list[dict]:
    """The logged rows with any of KEYS, with their ``step``, from the newest mmseg log or else
    the detectron2 one.

    Raises:
        FileNotFoundError: the folder holds no mmseg or detectron2 scalars.
    """
    rows = []
    for line in run_logs(work_dir)[-1].read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        values = {k: row[k] for k in KEYS if k in row}
        if values:
            rows.append({"step": row.get("step", row.get("iteration")), **values})
    return rows


def check_out(out: Path, work_dirs: list[Path]) -> None:
    """Refuses an ``--out`` that is a run log (through links too) or where one would be read.

    Raises:
        OutputIsInputError: ``out`` is, or would be read as, a scalars log of a work dir.
        FileNotFoundError: a work dir holds no scalars log.
    """
    refuse_writing_onto_inputs([out], [log for d in work_dirs for log in run_logs(d)],
                               reader="plot_alpha")
    for work_dir in work_dirs:
        # A PNG at a log's place that does not exist yet would be the log every later plot of
        # that run reads (the newest <timestamp>/vis_data/scalars.json), and fails to decode.
        inside = _relative(out, work_dir)
        if inside is not None and (inside.parts == ("metrics.json",) or (
                len(inside.parts) == 3 and inside.parts[1:] == ("vis_data", "scalars.json"))):
            raise OutputIsInputError(
                f"{out} is where plot_alpha reads the run logs of {work_dir} from; a later plot "
                "would read the PNG as one. Write it to a file of its own, e.g. "
                f"{work_dir / PLOT_NAME}.")


def _relative(path: Path, folder: Path) -> Path | None:
    try:
        return path.resolve().relative_to(folder.resolve())
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path(PLOT_NAME))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    def plot() -> int:
        check_out(args.out, args.work_dirs)  # before --overwrite: it never replaces an input
        if args.out.exists() and not args.overwrite:
            raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it.")
        runs = {str(d): read_rows(d) for d in args.work_dirs}
        print(plot_alpha_and_path_losses(runs, args.out, overwrite=args.overwrite))
        return 0

    return run_tool("plot_alpha", plot, args.debug)


if __name__ == "__main__":
    sys.exit(main())
