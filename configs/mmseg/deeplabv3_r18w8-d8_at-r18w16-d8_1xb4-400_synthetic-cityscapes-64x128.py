# Attention-transfer baseline on all four stages, added to the student's task loss.
_base_ = './_base_/synthetic_hybrid_64x128.py'
model = dict(backbone=dict(transfer='at', at=dict(beta=1000.0)))
