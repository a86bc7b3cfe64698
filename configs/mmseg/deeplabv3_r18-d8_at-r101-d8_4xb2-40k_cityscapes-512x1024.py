# Attention-transfer baseline on all four stages, added to the task loss.
_base_ = './deeplabv3_r18-d8_hybrid-r101-d8_4xb2-40k_cityscapes-512x1024.py'
model = dict(backbone=dict(transfer='at', at=dict(beta=1000.0)))
