"""Classification with hybrid forward: the paper's model-gap setting (Table 1, Fig. 5-6, 9).

Examples:
  # the built-in demo on scikit-learn's digits: teacher, then students without/with teacher
  hybridkt-train-cls --demo             # into work_dirs/cls_demo; again: --overwrite
  # train a teacher, then compare modes (ImageFolder data: <root>/train/<class>/*.jpg, val/)
  hybridkt-train-cls --train-teacher --teacher resnet50 --data-root /data/imagenet
  hybridkt-train-cls --student mobilenet_v1 --teacher resnet50 \
      --teacher-checkpoint work_dirs/cls/teacher_resnet50.pth --modes none,kd,at,hybrid
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from hybridkt_ext.cli_arguments import positive_float, positive_int
from hybridkt_ext.core.work_dir_outputs import prepare_work_dir
from hybridkt_ext.for_classification import ARCHITECTURES, MODES, TrainConfig
from hybridkt_ext.for_classification.data import load_datasets
from hybridkt_ext.for_classification.experiment import (
    exported_student_accuracy, load_classification_teacher, student_files, train_student,
    train_teacher)
from hybridkt_ext.for_classification.run_files import planned_outputs, student_runs, teacher_file
from hybridkt_ext.plotting import PLOT_NAME, plot_alpha_and_path_losses
from hybridkt_ext.tool_errors import add_debug_flag, run_tool


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--demo", action="store_true",
                   help="digits: train the teacher, then students in --modes; print the table")
    p.add_argument("--train-teacher", action="store_true", help="train the teacher only")
    p.add_argument("--data-root", type=Path, default=None,
                   help="ImageFolder root with train/ and val/ (default: built-in digits)")
    p.add_argument("--image-size", type=positive_int, default=None,
                   help="input size (default: 32 for digits, 224 for ImageFolder)")
    p.add_argument("--student", default="mobilenet_v1_0.5", choices=ARCHITECTURES)
    p.add_argument("--teacher", default="resnet18", choices=ARCHITECTURES)
    p.add_argument("--teacher-checkpoint", type=Path, default=None,
                   help="teacher weights (not with --demo / --train-teacher, which train it)")
    p.add_argument("--teacher-prefix", default="", help="key prefix of the teacher's weights")
    p.add_argument("--modes", default="none,hybrid",
                   help=f"comma-separated student modes from {MODES}")
    p.add_argument("--fixed-alpha", type=float, nargs="+", default=None,
                   help="alpha values for mode 'fixed' (one run each: the Fig. 9 sweep; "
                        "default 1)")
    p.add_argument("--switch-points", type=int, nargs="+", default=None,
                   help="stage indices before which hybrid paths switch (default: all)")
    p.add_argument("--epochs", type=positive_int, default=12,
                   help="student epochs (and teacher epochs unless --teacher-epochs)")
    p.add_argument("--teacher-epochs", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=positive_int, default=None,
                   help="digits: keep only this many training images (low-data setting)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="default: work_dirs/cls_demo with --demo, work_dirs/cls otherwise")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the outputs of a previous run in --work-dir")
    add_debug_flag(p)
    args = p.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        p.error(f"--modes has {unknown}; choose from {MODES}")
    repeated = sorted({m for m in args.modes if args.modes.count(m) > 1})
    if repeated:
        p.error(f"--modes names {repeated} more than once; each mode trains one student")
    if not args.modes and not args.train_teacher:
        p.error("--modes is empty; name at least one student mode")
    for flag, wanted, needs in (("--fixed-alpha", args.fixed_alpha, ("fixed",)),
                                ("--switch-points", args.switch_points, ("hybrid", "fixed"))):
        if wanted is not None and not set(needs) & set(args.modes):
            p.error(f"{flag} applies to mode {' / '.join(needs)} only, which --modes "
                    f"{','.join(args.modes)} does not run; add it or drop {flag}")
    args.fixed_alpha = args.fixed_alpha or [1.0]
    bad_alpha = [a for a in args.fixed_alpha if not (math.isfinite(a) and a >= 0)]
    if bad_alpha:
        p.error(f"--fixed-alpha needs finite values >= 0, got {bad_alpha}")
    if args.switch_points is not None and any(k < 1 for k in args.switch_points):
        p.error(f"--switch-points are stage indices >= 1 (a switch before stage k), got "
                f"{args.switch_points}")
    if args.demo and args.train_teacher:
        p.error("--demo trains the teacher and then the students; --train-teacher the teacher "
                "only: give one of them")
    if (args.demo or args.train_teacher) and args.teacher_checkpoint is not None:
        p.error(f"{'--demo' if args.demo else '--train-teacher'} trains its own teacher, so "
                "--teacher-checkpoint would be ignored; drop one of them")
    if args.train_limit is not None and args.data_root is not None:
        p.error("--train-limit subsamples the built-in digits only; drop it with --data-root")
    if not (args.demo or args.train_teacher) and args.teacher_checkpoint is None \
            and any(m != "none" for m in args.modes):
        p.error("modes other than 'none' need --teacher-checkpoint (or use --demo)")
    if args.work_dir is None:
        args.work_dir = Path("work_dirs/cls_demo" if args.demo else "work_dirs/cls")
    return args


def check_work_dir(args: argparse.Namespace) -> None:
    """Before any training: every output can be written (``prepare_work_dir``)."""
    # The teacher file and the images are read during training: no output may be one of them.
    data = () if args.data_root is None else (args.data_root / "train", args.data_root / "val")
    outputs = planned_outputs(args.work_dir, args.teacher, args.modes, args.fixed_alpha,
                              trains_teacher=args.demo or args.train_teacher,
                              trains_students=not args.train_teacher)
    prepare_work_dir(args.work_dir, outputs, (args.teacher_checkpoint, *data), args.overwrite,
                     reader="train_cls")


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_tool("train_cls", lambda: run(args), args.debug)


def run(args: argparse.Namespace) -> int:
    """Trains what ``args`` ask for and prints the table; returns the exit status."""
    check_work_dir(args)
    train_set, test_set, num_classes = load_datasets(args.data_root, args.image_size,
                                                     args.seed, args.train_limit)
    if len(train_set) < args.batch_size:
        raise ValueError(f"the training set has {len(train_set)} images, fewer than one batch "
                         f"(--batch-size {args.batch_size}): no step would train. Lower "
                         "--batch-size or raise --train-limit.")
    student_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              seed=args.seed)
    teacher_cfg = TrainConfig(epochs=args.teacher_epochs or args.epochs,
                              batch_size=args.batch_size, lr=args.lr, seed=args.seed + 1000)
    work = args.work_dir
    if args.demo or args.train_teacher:
        ckpt = teacher_file(work, args.teacher)
        acc = train_teacher(args.teacher, num_classes, train_set, test_set, teacher_cfg, ckpt,
                            overwrite=args.overwrite)
        print(f"teacher {args.teacher}: test accuracy {acc:.4f} -> {ckpt}")
        args.teacher_checkpoint = ckpt
        if args.train_teacher:
            return 0
    if any(m != "none" for m in args.modes):  # a bad teacher file fails before any training
        load_classification_teacher(args.teacher, num_classes, args.teacher_checkpoint,
                                    args.teacher_prefix, with_head="kd" in args.modes)
    results = []
    for mode, alpha in student_runs(args.modes, args.fixed_alpha):
        r = train_student(mode, args.student, num_classes, train_set, test_set, student_cfg,
                          work, args.teacher, args.teacher_checkpoint, args.teacher_prefix,
                          fixed_alpha=alpha, switch_points=args.switch_points,
                          overwrite=args.overwrite)
        weights, _ = student_files(work, r.mode)
        plain = exported_student_accuracy(args.student, num_classes, weights, test_set)
        results.append((r, plain))
        print(f"student {args.student} [{r.mode}]: test accuracy {r.accuracy:.4f} "
              f"({r.seconds:.0f} s)", flush=True)
    print(f"\n| student ({args.student}) | teacher | test acc. | exported plain model | "
          "final alpha | train s |")
    print("|---|---|---|---|---|---|")
    for r, plain in results:
        alpha = next((row["hkt_alpha"] for row in reversed(r.rows) if "hkt_alpha" in row), None)
        print(f"| {r.mode} | {'-' if r.mode == 'none' else args.teacher} | {r.accuracy:.4f} | "
              f"{plain:.4f} | {'-' if alpha is None else f'{alpha:.3f}'} | {r.seconds:.0f} |")
    hybrid_runs = {r.mode: r.rows for r, _ in results if any("hkt_alpha" in x for x in r.rows)}
    if hybrid_runs:
        png = plot_alpha_and_path_losses(hybrid_runs, work / PLOT_NAME,
                                         f"{args.teacher} -> {args.student}",
                                         overwrite=args.overwrite)
        print(f"\nplot of alpha and the path losses: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
