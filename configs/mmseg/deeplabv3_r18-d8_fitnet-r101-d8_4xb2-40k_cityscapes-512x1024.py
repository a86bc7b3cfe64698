# FitNet baseline: hint loss on the middle stage (layer3) added to the task loss.
_base_ = './deeplabv3_r18-d8_hybrid-r101-d8_4xb2-40k_cityscapes-512x1024.py'
model = dict(backbone=dict(transfer='fitnet', fitnet=dict(stages=(2, ), weight=1.0)))
