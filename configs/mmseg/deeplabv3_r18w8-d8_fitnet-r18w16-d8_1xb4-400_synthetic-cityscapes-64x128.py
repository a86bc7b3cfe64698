# FitNet baseline: hint loss on the middle stage added to the student's task loss.
_base_ = './_base_/synthetic_hybrid_64x128.py'
model = dict(backbone=dict(transfer='fitnet', fitnet=dict(stages=(2, ), weight=1.0)))
