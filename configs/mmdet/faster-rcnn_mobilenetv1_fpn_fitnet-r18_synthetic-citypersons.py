# Baseline of the synthetic hybrid config: FitNet (the student mimics the teacher's stages).
_base_ = './faster-rcnn_mobilenetv1_fpn_hybrid-r18_synthetic-citypersons.py'
model = dict(backbone=dict(transfer='fitnet'))
