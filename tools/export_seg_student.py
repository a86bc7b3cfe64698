#!/usr/bin/env python
"""Export the student of a hybrid-forward mmseg checkpoint for the plain student config.

The output (mmengine format: ``meta`` + ``state_dict``) loads into the student's plain mmseg
model with no hybridkt import. With ``--plain-config`` the matching plain config is written
too (the hybrid config with the student as backbone and every hybridkt reference removed).

  python tools/export_seg_student.py CONFIG work_dirs/x/iter_400.pth student.pth \
      --plain-config student_config.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from mmengine.config import Config  # noqa: E402

from hybridkt_ext.for_mmseg import export_student_checkpoint, plain_student_config  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("config", help="the hybrid config the checkpoint was trained with")
    parser.add_argument("checkpoint", help="checkpoint written by the Runner")
    parser.add_argument("out", help="the student-only checkpoint to write")
    parser.add_argument("--plain-config", help="also write the student's plain config here")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    plain_cfg = None
    if args.plain_config:
        if Path(args.plain_config).exists() and not args.overwrite:
            sys.exit(f"{args.plain_config} exists; pass --overwrite to replace it.")
        plain_cfg = plain_student_config(Config.fromfile(args.config))
    try:
        path = export_student_checkpoint(args.checkpoint, args.out, overwrite=args.overwrite)
    except (FileExistsError, KeyError) as err:
        sys.exit(str(err))
    print(f"wrote {path}")
    if plain_cfg is not None:
        plain_cfg.dump(args.plain_config)
        print(f"wrote {args.plain_config}")


if __name__ == "__main__":
    main()
