# Table 4 ablation: hybrid forward with a fixed balance instead of the dynamic alpha.
_base_ = './faster-rcnn_mobilenetv1_fpn_hybrid-r50_citypersons.py'
model = dict(backbone=dict(balance=dict(mode='fixed', fixed_alpha=1.0)))
