"""Export the student of a hybrid-forward mmseg checkpoint for the plain student config.

The output (mmengine format: ``meta`` + ``state_dict``) loads into the student's plain mmseg
model with no hybridkt import. With ``--plain-config`` the matching plain config is written
too (the hybrid config with the student as backbone and every hybridkt reference removed).
Existing outputs are kept unless ``--overwrite`` is given; every input is checked before
anything is written, and each file is written to a temporary name and renamed into place,
so a failure leaves no partial output.

  hybridkt-export-seg-student CONFIG work_dirs/x/iter_400.pth student.pth \
      --plain-config student_config.py
"""
from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path


from mmengine.config import Config

from hybridkt_ext.core import save_atomically
from hybridkt_ext.for_openmmlab import plain_student_config
from hybridkt_ext.for_openmmlab.student_export import (
    check_export_target, student_checkpoint)
from hybridkt_ext.tool_errors import add_debug_flag, run_tool


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("config", help="the hybrid config the checkpoint was trained with")
    parser.add_argument("checkpoint", help="checkpoint written by the Runner")
    parser.add_argument("out", help="the student-only checkpoint to write")
    parser.add_argument("--plain-config", help="also write the student's plain config here")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="unpickle any class in the checkpoint: only for files you trust, "
                             "a pickle can run code")
    add_debug_flag(parser)
    return parser.parse_args(argv)


def dump_config_to_temp(cfg: Config, path: str) -> Path:
    """Config.dump beside ``path`` under a temporary name with the same suffix (dump picks
    the format from it); the caller renames it into place once the checkpoint is written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{secrets.token_hex(6)}.tmp{target.suffix}")
    try:
        cfg.dump(str(tmp))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def export(args: argparse.Namespace) -> None:
    """Both outputs or neither: every input is read and checked before the first write, and
    the config is renamed into place only after the checkpoint was written."""
    others = (args.config,) + ((args.plain_config,) if args.plain_config else ())
    check_export_target(args.checkpoint, args.out, args.overwrite, inputs=others)
    plain_cfg = None
    if args.plain_config:
        check_export_target(args.checkpoint, args.plain_config, args.overwrite,
                            inputs=(args.config, args.out))
        plain_cfg = plain_student_config(Config.fromfile(args.config))
    student = student_checkpoint(args.checkpoint, trust=args.trust_checkpoint)
    tmp_cfg = None if plain_cfg is None else dump_config_to_temp(plain_cfg, args.plain_config)
    try:
        print(f"wrote {save_atomically(student, args.out, overwrite=args.overwrite)}")
        if tmp_cfg is not None:
            os.replace(tmp_cfg, args.plain_config)
            print(f"wrote {args.plain_config}")
    finally:
        if tmp_cfg is not None:
            tmp_cfg.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_tool("export_seg_student", lambda: export(args), args.debug)


if __name__ == "__main__":
    main()
