"""The segmentation demo (`make demo`): GTA5-style teacher, Cityscapes student, generated data.

Trains a teacher on the GTA5-style synthetic domain, then the same student twice on the
Cityscapes-style domain — without a teacher and with hybrid forward — and prints the mIoU of
each on both domains. Writes results.json, results.md and alpha_and_path_losses.png (alpha
and L1/L2/L3 over iterations, the paper's Fig. 6/7) into the work dir.

  hybridkt-demo-seg                     # a few minutes on 2 CPU cores
  hybridkt-demo-seg --iters 800 --seed 1 --work-dir work_dirs/demo_seg_800

A work dir that holds a previous demo is refused unless --overwrite (`make demo` passes it:
that folder is the demo's own); one inside (or equal to) --data-root always is.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

# Known noise, not about the user's inputs: mmcv and mmengine 0.10.7 import pkg_resources
# (setuptools is pinned below 81 for mmcv's build); the runs' own warnings go to their files.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)


import hybridkt_ext.for_mmseg  # noqa: F401  (registers HybridBackbone & co.)
from hybridkt_ext.cli_arguments import positive_int
from hybridkt_ext.core.output_guard import refuse_writing_onto_inputs
from hybridkt_ext.reproduction.segmentation_demo import (
    check_demo_work_dir, format_results, run_segmentation_demo, write_results)
from hybridkt_ext.tool_errors import add_debug_flag, run_tool


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--work-dir", default="work_dirs/demo_seg",
                        help="checkpoints, logs, results.json/.md and the plot")
    parser.add_argument("--data-root", default="data",
                        help="where the synthetic datasets are generated on first use")
    parser.add_argument("--iters", type=positive_int, default=400,
                        help="iterations of each student")
    parser.add_argument("--teacher-iters", type=positive_int, default=400,
                        help="iterations of the teacher")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a previous demo in --work-dir")
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_tool("demo_seg", lambda: demo(args), args.debug)


def demo(args: argparse.Namespace) -> int:
    # The datasets are generated and read under --data-root: a work dir in there could replace
    # or pass for their files, --overwrite or not.
    refuse_writing_onto_inputs([args.work_dir], [args.data_root], reader="demo_seg")
    check_demo_work_dir(args.work_dir, args.overwrite)
    start = time.perf_counter()
    runs = run_segmentation_demo(args.work_dir, args.data_root, iters=args.iters,
                                 teacher_iters=args.teacher_iters, seed=args.seed,
                                 progress=lambda line: print(line, flush=True))
    outputs = write_results(runs, args.work_dir)
    print()
    print(format_results(runs))
    print(f"\nwall time {time.perf_counter() - start:.0f} s; "
          + ", ".join(f"{kind}: {path}" for kind, path in outputs.items()))
    print(f"framework logs and warnings of each run: {args.work_dir}/<run>/console.log and "
          f"{args.work_dir}/<run>/<timestamp>/<timestamp>.log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
