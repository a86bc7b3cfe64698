# mmdet's Faster R-CNN R50-FPN on CityPersons (the paper's Table 4 setting); one class (person).
# Composed as mmdet composes its own configs: model, dataset, schedule, runtime.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py', './datasets/citypersons_detection.py',
    './schedules/iter-6k_citypersons.py', 'mmdet::_base_/default_runtime.py'
]
model = dict(roi_head=dict(bbox_head=dict(num_classes=1)))
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(by_epoch=False, interval=1000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
