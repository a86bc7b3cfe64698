"""Smoke-test any mmseg, mmdet or detectron2 config: plain and hybrid, on generated data.

``hybridkt-smoke`` (``tools/smoke.py`` in a clone). For a stock config, ``--teacher`` converts
its backbone with the README's lines; a converted config runs as it is. Both run N iterations
on CPU with the framework's own Runner or trainer, on generated data of the layout and labels
the config's heads need, and the tool prints alpha and L1..L3 per iteration, the time per
iteration of each, and whether the exported student gives the hybrid model's outputs in the
plain config. Exit status 0 only when all of that holds.

Examples::

    tools/smoke.py mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py \
        --teacher torchvision.resnet18
    tools/smoke.py mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py \
        --teacher config:mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py
    tools/smoke.py COCO-Detection/retinanet_R_50_FPN_1x.yaml --teacher timm.resnet18
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from hybridkt_ext.smoke.config_kind import config_kind
from hybridkt_ext.smoke.teacher_option import TEACHER_FORMS, TeacherOption
from hybridkt_ext.tool_errors import add_debug_flag, run_tool


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="mmseg/mmdet .py config (file or mmseg::/mmdet:: name) "
                                       "or detectron2 .yaml (file or model-zoo name)")
    parser.add_argument("--teacher", help=f"convert a stock config with this teacher: "
                                          f"{TEACHER_FORMS}")
    parser.add_argument("--teacher-checkpoint", help="the teacher's weights (default: random)")
    parser.add_argument("--teacher-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a further teacher key of an mmseg/mmdet HybridBackbone (Python "
                             "literal), e.g. dynamic_img_size=True for a timm ViT")
    parser.add_argument("--iters", type=int, default=4, help="iterations of each run")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"),
                        help="image size of the generated data (mmseg: the crop; mmdet and "
                             "detectron2: H is the short side)")
    parser.add_argument("--work-dir", help="where the runs write (default: a temporary folder)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error(f"--iters must be at least 1, got {args.iters}")
    if (args.teacher_checkpoint or args.teacher_option) and not args.teacher:
        parser.error("--teacher-checkpoint and --teacher-option need --teacher")
    return args


def smoke(args: argparse.Namespace) -> int:
    teacher = (TeacherOption.parse(args.teacher, args.teacher_checkpoint, args.teacher_option)
               if args.teacher else None)
    kind = config_kind(args.config)
    with tempfile.TemporaryDirectory(prefix="hybridkt-smoke-") as scratch:
        work_dir = Path(args.work_dir or scratch)
        if kind == "detectron2":
            from hybridkt_ext.smoke.detectron2_smoke import run_detectron2_smoke
            result = run_detectron2_smoke(args.config, teacher, args.iters, work_dir,
                                          tuple(args.size))
        else:
            from hybridkt_ext.smoke.openmmlab_smoke import run_openmmlab_smoke
            result = run_openmmlab_smoke(args.config, kind, teacher, args.iters, work_dir,
                                         tuple(args.size))
    print("\n".join(result.lines()))
    return 1 if result.problems else 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sys.exit(run_tool("hybridkt-smoke", lambda: smoke(args), debug=args.debug))


if __name__ == "__main__":
    main()
