# PointRend ResNet-50 (CascadeEncoderDecoder: an FPN head, then the point head), taught by a
# DeepLabV3 ResNet-18-D8.
# CascadeEncoderDecoder converts with the same lines as EncoderDecoder: HybridKTHook runs the
# stock segmentor's own loss once per path.
_base_ = 'mmseg::point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['hybridkt_ext.for_mmseg'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True, type='HybridBackbone', student={{_base_.model.backbone}},
        teacher=dict(config='mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
                     checkpoint='checkpoints/deeplabv3_r18-d8_512x1024_80k_cityscapes.pth')))
custom_hooks = [*_base_.get('custom_hooks', []), dict(type='HybridKTHook')]  # the base's kept
