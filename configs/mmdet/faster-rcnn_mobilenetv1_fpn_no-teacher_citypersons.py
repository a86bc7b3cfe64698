# Table 4 baseline: the same MobileNetV1 student trained alone (one line from the hybrid config).
_base_ = './faster-rcnn_mobilenetv1_fpn_hybrid-r50_citypersons.py'
model = dict(backbone=dict(transfer='none', teacher=None))
