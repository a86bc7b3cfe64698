"""Building the plain model of an exported MobileNetV1 student (no hybrid training code runs).

    python examples/detectron2_plain_student.py student.yaml

``tools/train_net.py --export-student student.pth`` writes student.pth and student.yaml;
detectron2 has no MobileNetV1, so its config keys need one import first.
"""
import sys

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from hybridkt_ext.for_detectron2.mobilenet_v1_backbone import add_mobilenet_v1_config

cfg = get_cfg(); add_mobilenet_v1_config(cfg); cfg.merge_from_file(sys.argv[1])  # noqa: E702
model = build_model(cfg)
DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
print(type(model).__name__, type(model.backbone.bottom_up).__name__)
