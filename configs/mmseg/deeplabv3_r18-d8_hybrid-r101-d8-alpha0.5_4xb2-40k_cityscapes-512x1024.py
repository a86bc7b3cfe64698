# Fixed alpha (the paper's Fig. 9 sweep): total = 0.5 * (L1 + L2) + L3.
_base_ = './deeplabv3_r18-d8_hybrid-r101-d8_4xb2-40k_cityscapes-512x1024.py'
model = dict(backbone=dict(balance=dict(mode='fixed', fixed_alpha=0.5)))
