"""Converting a detectron2 LazyConfig: the LSJ Mask R-CNN baseline's bottom-up becomes hybrid.

    python tools/train_net.py --config-file examples/detectron2_lazyconfig.py ...

(a whole training config also needs ``dataloader``, ``optimizer``, ``lr_multiplier`` and
``train``: see configs/detectron2/lazy/).
"""
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from hybridkt_ext.for_detectron2.lazy import hybrid_bottom_up

model = model_zoo.get_config("new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py").model
model.backbone.bottom_up = L(hybrid_bottom_up)(
    student=model.backbone.bottom_up,  # the config's own bottom-up
    teacher=dict(config="COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml", weights="teacher.pkl"),
    out_features="${.student.out_features}")
