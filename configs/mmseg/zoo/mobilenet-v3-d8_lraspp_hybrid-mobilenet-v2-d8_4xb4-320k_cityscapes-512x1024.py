# MobileNetV3 LR-ASPP taught by a MobileNetV2-D8 DeepLabV3. LR-ASPP reads the stride-2
# feature, so the teacher needs a stage there: a ResNet's first stage ends at stride 4.
# The README's conversion of a config mmseg ships: its own backbone becomes the student of a
# HybridBackbone, the teacher is named by the config it was trained with (its backbone,
# dilations and pixel convention come from there), and the segmentor and its heads stay the
# stock ones (HybridKTHook runs the segmentor's own loss once per path).
_base_ = 'mmseg::mobilenet_v3/mobilenet-v3-d8_lraspp_4xb4-320k_cityscapes-512x1024.py'
custom_imports = dict(imports=['hybridkt_ext.for_mmseg'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True, type='HybridBackbone', student={{_base_.model.backbone}},
        teacher=dict(config=('mmseg::mobilenet_v2/'
                             'mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py'),
                     checkpoint='checkpoints/deeplabv3_m-v2-d8_512x1024_80k_cityscapes.pth')))
custom_hooks = [*_base_.get('custom_hooks', []), dict(type='HybridKTHook')]  # the base's kept
