# Ablation of the synthetic hybrid config: a fixed balance instead of the dynamic alpha.
_base_ = './faster-rcnn_mobilenetv1_fpn_hybrid-r18_synthetic-citypersons.py'
model = dict(backbone=dict(balance=dict(mode='fixed', fixed_alpha=1.0)))
