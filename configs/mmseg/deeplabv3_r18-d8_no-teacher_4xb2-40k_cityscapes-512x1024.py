# Baseline: the same student trained alone (one flag apart from the hybrid config).
_base_ = './deeplabv3_r18-d8_hybrid-r101-d8_4xb2-40k_cityscapes-512x1024.py'
model = dict(backbone=dict(transfer='none', teacher=None))
