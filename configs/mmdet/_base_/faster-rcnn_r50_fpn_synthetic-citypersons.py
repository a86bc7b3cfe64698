# mmdet's Faster R-CNN R50-FPN on synthetic CityPersons (CPU minutes); one class (person).
# Composed as mmdet composes its own configs: model, dataset, schedule, runtime.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py', './datasets/synthetic-citypersons_detection.py',
    './schedules/iter-400_cpu.py', 'mmdet::_base_/default_runtime.py'
]
model = dict(roi_head=dict(bbox_head=dict(num_classes=1)))
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(by_epoch=False, interval=400, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
