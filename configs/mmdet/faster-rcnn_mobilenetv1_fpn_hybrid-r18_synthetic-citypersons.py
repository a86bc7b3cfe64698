# Hybrid forward on synthetic CityPersons in CPU minutes: MobileNetV1 (width 0.25) student,
# the R18-FPN teacher of faster-rcnn_r18_fpn_teacher_synthetic-citypersons.py. The teacher
# checkpoint defaults to None with allow_random_init=True so that the config runs on a fresh
# clone (smoke runs, tests; the log and every checkpoint say so); real transfer passes the file:
#   --cfg-options model.backbone.teacher.checkpoint=work_dirs/<teacher>/iter_600.pth
#                 model.backbone.teacher.allow_random_init=False
_base_ = './_base_/faster-rcnn_r50_fpn_synthetic-citypersons.py'
student = dict(type='MobileNetV1', width_mult=0.25, out_indices=(0, 1, 2, 3))
teacher = dict(type='ResNet', depth=18, checkpoint=None, allow_random_init=True,
               prefix='backbone.')
model = dict(
    backbone=dict(_delete_=True, type='HybridBackbone', transfer='hybrid', student=student,
                  teacher=teacher, balance=dict(mode='dynamic')),
    neck=dict(in_channels=[32, 64, 128, 256]))
custom_hooks = [dict(type='HybridKTHook')]
