# SegFormer MiT-B0 taught by a DeepLabV3 ResNet-18-D8 (another architecture: CNN -> transformer).
# The README's conversion of a config mmseg ships: its own backbone becomes the student of a
# HybridBackbone, the teacher is named by the config it was trained with (its backbone,
# dilations and pixel convention come from there), and the segmentor and its heads stay the
# stock ones (HybridKTHook runs the segmentor's own loss once per path).
_base_ = 'mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py'
custom_imports = dict(imports=['hybridkt_ext.for_mmseg'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True, type='HybridBackbone', student={{_base_.model.backbone}},
        teacher=dict(config='mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
                     checkpoint='checkpoints/deeplabv3_r18-d8_512x1024_80k_cityscapes.pth')))
custom_hooks = [*_base_.get('custom_hooks', []), dict(type='HybridKTHook')]  # the base's kept
