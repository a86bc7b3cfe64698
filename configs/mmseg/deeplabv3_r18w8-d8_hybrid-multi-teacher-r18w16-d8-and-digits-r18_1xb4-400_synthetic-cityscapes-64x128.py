# Two teachers of different kinds for one segmentation student (issue 26): the GTA5-style
# segmentation teacher of synthetic_hybrid_64x128.py (another domain) and a torchvision
# ResNet-18 digit classifier (another task and dataset). Each teacher has its own adapters, its
# own student-first and teacher-first paths and its own alpha, logged as hkt_alpha/gta5 and
# hkt_alpha/digits; total = sum_k alpha_k (L1_k + L2_k) / 2 + L3.
# Both teachers default to random weights so the config runs on a fresh clone; real transfer
# passes the trained files:
#   --cfg-options model.backbone.teacher.0.checkpoint=work_dirs/<gta5 teacher>/iter_400.pth
#                 model.backbone.teacher.1.checkpoint=<digit classifier>.pth
# (and allow_random_init=False for each). balance=dict(teachers='sample') runs one teacher's
# pair of paths per step, in turn, at the cost of a one-teacher step.
_base_ = './_base_/synthetic_hybrid_64x128.py'
digits_teacher = dict(
    type='torchvision.resnet18', num_classes=10, checkpoint=None, allow_random_init=True)
model = dict(
    backbone=dict(
        teacher=[dict(name='gta5', **_base_.teacher_backbone),
                 dict(name='digits', **digits_teacher)]))
