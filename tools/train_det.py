#!/usr/bin/env python
"""Train an mmdet detector, hybrid-forward configs included (mmdet's tools/train.py CLI).

Examples:
  python tools/train_det.py \
      configs/mmdet/faster-rcnn_mobilenetv1_fpn_hybrid-r18_synthetic-citypersons.py \
      --cfg-options train_cfg.max_iters=4
  torchrun --nproc_per_node=4 tools/train_det.py CONFIG --launcher pytorch
  python tools/train_det.py CONFIG --work-dir DIR --resume   # continue DIR's latest checkpoint

The tool itself is hybridkt_ext/for_mmseg/training_tool.py (shared with tools/train_seg.py).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

import hybridkt_ext.for_mmdet  # noqa: E402,F401  (registers HybridBackbone & co. in mmdet)
from hybridkt_ext.for_mmseg import training_tool  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    training_tool.main("train_det", "Train a detector (hybrid forward aware)", argv)


if __name__ == "__main__":
    main()
