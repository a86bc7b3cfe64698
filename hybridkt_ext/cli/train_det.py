"""Train an mmdet detector, hybrid-forward configs included (mmdet's tools/train.py CLI).

Examples:
  hybridkt-train-det \
      configs/mmdet/faster-rcnn_mobilenetv1_fpn_hybrid-r18_synthetic-citypersons.py \
      --cfg-options train_cfg.max_iters=4
  torchrun --nproc_per_node=4 -m hybridkt_ext.cli.train_det CONFIG --launcher pytorch
  hybridkt-train-det CONFIG --work-dir DIR --resume   # continue DIR's latest checkpoint

The tool itself is hybridkt_ext/for_openmmlab/training_tool.py (shared with hybridkt-train-seg).
"""
import hybridkt_ext.for_mmdet  # noqa: F401  (registers HybridBackbone & co. in mmdet)
from hybridkt_ext.for_openmmlab import training_tool


def main(argv: list[str] | None = None) -> None:
    training_tool.main("train_det", "Train a detector (hybrid forward aware)", argv)


if __name__ == "__main__":
    main()
