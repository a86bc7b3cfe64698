# mmdet's own RetinaNet config converted for hybrid forward: a ResNet-18 student trained with a
# frozen ResNet-50 teacher (the backbone of a detector trained elsewhere; point `checkpoint` at
# its file). Everything else (FPN, RetinaHead, COCO data, schedule) is mmdet's config unchanged.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['hybridkt_ext.for_mmdet'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='HybridBackbone',
                  student=dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3)),
                  teacher=dict(type='ResNet', depth=50, checkpoint='detector_r50.pth',
                               prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 256, 512]))
custom_hooks = [*_base_.get('custom_hooks', []), dict(type='HybridKTHook')]  # the base's kept
