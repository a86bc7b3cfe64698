"""detectron2's LSJ baseline (new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py) with hybrid forward,
on CityPersons (the paper's Table 4 task).

The conversion is the bottom-up assignment: the config's own ResNet-50 becomes the student of a
hybrid bottom-up; its SyncBN FPN and heads stay as they are (their statistics come from the
student path). The rest adapts the COCO recipe to CityPersons: one class, boxes only (the mask
head goes: CityPersons has no masks), the CityPersons loaders and the MR^-2 evaluator.
Train: ``python tools/train_net.py --config-file <this file> --num-gpus 8``; give the teacher's
weights with ``model.backbone.bottom_up.teacher.weights=<file>`` (or edit them in below).
"""
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from hybridkt_ext.for_detectron2 import CityPersonsEvaluator
from hybridkt_ext.for_detectron2.lazy import hybrid_bottom_up

_lsj = model_zoo.get_config("new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py")
model, dataloader, optimizer, lr_multiplier, train = (
    _lsj.model, _lsj.dataloader, _lsj.optimizer, _lsj.lr_multiplier, _lsj.train)

# The conversion: the paper's teacher, the ResNet-50 trunk of a pose network (torchvision layout).
model.backbone.bottom_up = L(hybrid_bottom_up)(
    student=model.backbone.bottom_up,
    teacher=dict(framework="torchvision", arch="resnet50", weights="",
                 pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375],
                 input_format="RGB"),
    out_features="${.student.out_features}")

# CityPersons: pedestrians, boxes only.
model.roi_heads.num_classes = 1
model.roi_heads.mask_in_features = None
model.roi_heads.mask_pooler = None
model.roi_heads.mask_head = None
dataloader.train.mapper.use_instance_mask = False
dataloader.train.mapper.recompute_boxes = False  # the crop transforms the boxes themselves
dataloader.train.dataset.names = "citypersons_train"
dataloader.test.dataset.names = "citypersons_val"
dataloader.evaluator = L(CityPersonsEvaluator)(dataset_name="citypersons_val")
