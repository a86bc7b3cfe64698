# Baseline of the synthetic hybrid config: the same student alone (one line apart).
_base_ = './faster-rcnn_mobilenetv1_fpn_hybrid-r18_synthetic-citypersons.py'
model = dict(backbone=dict(transfer='none', teacher=None))
