# mmdet's Faster R-CNN R50-FPN on synthetic CityPersons (CPU minutes); one class (person).
# Composed as mmdet composes its own configs: model, dataset, schedule, runtime. The model is
# cut to the detectron2 synthetic configs' size (configs/detectron2/Base-synthetic.yaml): with
# mmdet's full heads (256-channel FPN, 2x1024 FC on 512 RoIs) one CPU step took 4-14 s.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py', './datasets/synthetic-citypersons_detection.py',
    './schedules/iter-600_cpu.py', 'mmdet::_base_/default_runtime.py'
]
# GroupNorm keeps no running statistics, so the hybrid paths cannot skew the neck and head.
norm = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    neck=dict(out_channels=32, norm_cfg=norm),
    rpn_head=dict(
        in_channels=32, feat_channels=32,
        # The base sizes / 4 (images at 1/4 of Cityscapes), three per octave, one tall shape
        # (CityPersons boxes have width / height 0.41): 8, 10, 13 pixels on stride 4.
        anchor_generator=dict(octave_base_scale=2, scales_per_octave=3, scales=None,
                              ratios=[2.44])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(type='ConvFCBBoxHead', num_shared_convs=2, num_shared_fcs=1,
                       in_channels=32, conv_out_channels=64, fc_out_channels=256,
                       norm_cfg=norm, num_classes=1)),
    train_cfg=dict(rpn=dict(sampler=dict(num=64)),
                   rpn_proposal=dict(nms_pre=200, max_per_img=100),
                   rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100)))
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(by_epoch=False, interval=600, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
