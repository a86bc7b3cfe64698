# Baseline without teacher: the same HybridBackbone with transfer='none' (plain student
# training), so the comparison with the hybrid config is one flag apart.
_base_ = './_base_/synthetic_hybrid_64x128.py'
model = dict(backbone=dict(transfer='none', teacher=None))
