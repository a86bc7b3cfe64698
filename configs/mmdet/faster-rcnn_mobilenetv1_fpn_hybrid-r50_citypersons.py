# The paper's Table 4 "Ours": Faster R-CNN FPN on CityPersons, MobileNetV1 student, frozen
# ResNet-50 teacher from another task (e.g. the trunk of a pose or segmentation network),
# dynamic balancing. The conversion of mmdet's own config is the backbone swap (the original
# backbone would be `student`), the neck's input channels, the hook and the custom import.
# Point teacher.checkpoint at the teacher file (and `prefix` at its backbone's key prefix).
_base_ = './_base_/faster-rcnn_r50_fpn_citypersons.py'

student = dict(type='MobileNetV1', width_mult=1.0, out_indices=(0, 1, 2, 3))
teacher = dict(type='ResNet', depth=50, checkpoint='checkpoints/resnet50_teacher.pth',
               prefix='backbone.')
model = dict(
    backbone=dict(_delete_=True, type='HybridBackbone', transfer='hybrid', student=student,
                  teacher=teacher, balance=dict(mode='dynamic')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
custom_hooks = [dict(type='HybridKTHook')]
