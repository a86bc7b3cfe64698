"""Reproduce the paper's claims at small scale: tables (mean ± std over seeds) and plots.

Examples:
  hybridkt-reproduce --quick                  # every experiment, minutes
  hybridkt-reproduce --experiments classification --seeds 3 --out docs/results \
      --overwrite                             # the tables the docs quote
  hybridkt-reproduce --experiments segmentation --seeds 2 --iters 400
  hybridkt-reproduce --experiments detection --detection-framework mmdet --quick
  hybridkt-reproduce --experiments matched_compute_segmentation --out docs/results
                                              # each method at its measured training cost

Outputs in --out (default work_dirs/reproduce/results): <table>.md and <table>.json per table,
PNG figures, summary.json (settings, seeds, wall time per experiment). An --out may gather the
experiments of several runs; one it already holds is replaced only with --overwrite. Training
work directories go to --work-dir. Neither may be in data/, where the datasets are generated.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hybridkt_ext.cli_arguments import positive_int
from hybridkt_ext.core.output_guard import refuse_writing_onto_inputs
from hybridkt_ext.reproduction.runner import ALL_EXPERIMENTS, EXPERIMENTS, run_experiments
from hybridkt_ext.tool_errors import add_debug_flag, run_tool


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--experiments", default=",".join(EXPERIMENTS),
                   help=f"comma-separated subset of {ALL_EXPERIMENTS} (default: the paper's "
                        f"{EXPERIMENTS}; the matched-compute ones only when named)")
    p.add_argument("--quick", action="store_true",
                   help="reduced epochs/iterations: all experiments in minutes on 2 CPU cores")
    p.add_argument("--seeds", type=positive_int, default=None,
                   help="number of seeds (0..N-1); default 2 with --quick, 3 otherwise")
    p.add_argument("--out", type=Path, default=Path("work_dirs/reproduce/results"),
                   help="tables (.md, .json), plots (.png) and summary.json")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of these experiments already in --out")
    p.add_argument("--work-dir", type=Path, default=Path("work_dirs/reproduce"),
                   help="checkpoints and training logs")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="classification, matched_compute_digits: student epochs")
    p.add_argument("--teacher-epochs", type=positive_int, default=None,
                   help="classification, matched_compute_digits: teacher epochs")
    p.add_argument("--train-limit", type=positive_int, default=None,
                   help="classification: keep only this many training digits")
    p.add_argument("--iters", type=positive_int, default=None,
                   help="segmentation/detection and their matched_compute_*: student iterations")
    p.add_argument("--teacher-iters", type=positive_int, default=None,
                   help="segmentation: teacher iterations")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="detection: training runs side by side, one thread each (default 1; "
                        "2 on an idle 2-core machine halves its wall time)")
    p.add_argument("--detection-framework", choices=("auto", "detectron2", "mmdet"),
                   default=None, help="detection: the framework that trains (default auto: "
                                      "detectron2 where installed, else mmdet)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch CPU threads (default 1: on a shared 2-core machine one thread "
                        "per process is ~3x faster than oversubscribed threads)")
    add_debug_flag(p)
    args = p.parse_args(argv)
    args.experiments = [e.strip() for e in args.experiments.split(",") if e.strip()]
    bad = [e for e in args.experiments if e not in ALL_EXPERIMENTS]
    if bad:
        p.error(f"--experiments has {bad}; choose from {ALL_EXPERIMENTS}")
    if args.seeds is None:
        args.seeds = 2 if args.quick else 3
    return args


def reproduce(args: argparse.Namespace) -> int:
    import torch

    # The experiments generate and read their datasets under data/ ($HYBRIDKT_DATA for the
    # detectron2 ones): results or runs in there could replace or pass for their files. One
    # call each: --out may be --work-dir (tables and run folders have names of their own).
    for out in (args.out, args.work_dir):
        refuse_writing_onto_inputs([out], data_folders(), reader="reproduce")

    torch.set_num_threads(args.threads)
    os.environ.setdefault("MPLBACKEND", "Agg")
    run_experiments(args.experiments, args.out, args.work_dir, range(args.seeds), args.quick,
                    overwrite=args.overwrite, epochs=args.epochs,
                    teacher_epochs=args.teacher_epochs, train_limit=args.train_limit,
                    iters=args.iters, teacher_iters=args.teacher_iters, jobs=args.jobs,
                    framework=args.detection_framework)
    print(f"tables and plots in {args.out}")
    return 0


def data_folders() -> list[Path]:
    """The folders the experiments read their (generated) datasets from, once each."""
    folders = [Path("data"), Path(os.getenv("HYBRIDKT_DATA", "data"))]
    return [f for i, f in enumerate(folders) if f not in folders[:i]]


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_tool("reproduce", lambda: reproduce(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
