# Table 4 baseline: FitNet (the student mimics the teacher's stage features), same teacher.
_base_ = './faster-rcnn_mobilenetv1_fpn_hybrid-r50_citypersons.py'
model = dict(backbone=dict(transfer='fitnet'))
