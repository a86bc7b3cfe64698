# The teacher of the synthetic detection configs: a plain mmdet Faster R-CNN R18-FPN trained on
# synthetic CityPersons (no hybridkt model part; the data come from this package).
#   python tools/train_det.py configs/mmdet/faster-rcnn_r18_fpn_teacher_synthetic-citypersons.py
_base_ = './_base_/faster-rcnn_r50_fpn_synthetic-citypersons.py'
model = dict(
    backbone=dict(depth=18, init_cfg=None),  # no download: trained from scratch here
    neck=dict(in_channels=[64, 128, 256, 512]))
