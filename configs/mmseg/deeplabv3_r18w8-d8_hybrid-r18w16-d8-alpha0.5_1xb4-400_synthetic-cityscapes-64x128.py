# Fixed alpha (the paper's Fig. 9 sweep): total = 0.5 * (L1 + L2) + L3.
_base_ = './_base_/synthetic_hybrid_64x128.py'
model = dict(backbone=dict(balance=dict(mode='fixed', fixed_alpha=0.5)))
