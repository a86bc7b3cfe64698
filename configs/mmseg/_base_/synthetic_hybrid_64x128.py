# The synthetic student (Cityscapes-style data) with a teacher trained on the GTA5-style
# domain by deeplabv3_r18w16-d8_1xb4-400_synthetic-gta5-64x128.py (twice as wide: adapters
# are exercised). The teacher checkpoint defaults to None with allow_random_init=True so that
# the config runs on a fresh clone (smoke runs, tests); real transfer passes the trained file:
#   --cfg-options model.backbone.teacher.checkpoint=work_dirs/<teacher>/iter_400.pth
#                 model.backbone.teacher.allow_random_init=False
_base_ = './synthetic_64x128.py'
teacher_backbone = dict(
    type='ResNetV1c', depth=18, stem_channels=32, base_channels=16, num_stages=4,
    out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
    norm_cfg=dict(type='BN', requires_grad=True), contract_dilation=True,
    checkpoint=None, allow_random_init=True, prefix='backbone.')
# mmseg's own EncoderDecoder: HybridKTHook wires its loss to the backbone's transfer step.
model = dict(
    backbone=dict(
        _delete_=True, type='HybridBackbone', transfer='hybrid',
        student={{_base_.student_backbone}}, teacher=teacher_backbone,
        balance=dict(mode='dynamic')))
custom_hooks = [dict(type='HybridKTHook')]
