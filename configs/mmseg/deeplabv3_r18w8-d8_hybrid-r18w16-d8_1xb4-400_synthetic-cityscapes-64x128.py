# Hybrid forward with dynamic balancing (the paper), synthetic Cityscapes-style student.
_base_ = './_base_/synthetic_hybrid_64x128.py'
