"""detectron2's LazyConfig RetinaNet R50-FPN (COCO-Detection/retinanet_R_50_FPN_1x.py, model
from common/models/retinanet.py) with hybrid forward, on CityPersons.

The conversion is the bottom-up assignment; the P6/P7 top block keeps reading the student's
res5 (2048 channels). Give the teacher's weights with
``model.backbone.bottom_up.teacher.weights=<file>``.
"""
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from hybridkt_ext.for_detectron2 import CityPersonsEvaluator
from hybridkt_ext.for_detectron2.lazy import hybrid_bottom_up

_base = model_zoo.get_config("COCO-Detection/retinanet_R_50_FPN_1x.py")
model, dataloader, optimizer, lr_multiplier, train = (
    _base.model, _base.dataloader, _base.optimizer, _base.lr_multiplier, _base.train)

model.backbone.bottom_up = L(hybrid_bottom_up)(
    student=model.backbone.bottom_up,
    teacher=dict(framework="torchvision", arch="resnet50", weights="",
                 pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375],
                 input_format="RGB"),
    out_features="${.student.out_features}")

model.num_classes = 1
dataloader.train.dataset.names = "citypersons_train"
dataloader.test.dataset.names = "citypersons_val"
dataloader.evaluator = L(CityPersonsEvaluator)(dataset_name="citypersons_val")
