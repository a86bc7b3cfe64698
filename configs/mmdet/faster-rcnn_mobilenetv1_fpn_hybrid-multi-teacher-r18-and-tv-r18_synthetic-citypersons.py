# Two teachers of different kinds for one detection student (issue 26): the R18-FPN detector
# teacher of faster-rcnn_mobilenetv1_fpn_hybrid-r18_synthetic-citypersons.py (an mmdet ResNet-18
# backbone, same task) and a torchvision ResNet-18 image classifier (another task, another
# library's layout). Both downsample at every stage as the MobileNetV1 student does, so one
# student split serves both. Each teacher has its own adapters, its own student-first and
# teacher-first paths and its own alpha, logged as hkt_alpha/det and hkt_alpha/cls (with
# hkt_L1/<name>, hkt_L2/<name>; hkt_L3 is the one student path);
# total = sum_k alpha_k (L1_k + L2_k) / 2 + L3.
# Both teachers default to random weights so the config runs on a fresh clone (smoke runs,
# tests; the log and every checkpoint say so); real transfer passes the trained files:
#   --cfg-options model.backbone.teacher.0.checkpoint=work_dirs/<r18 teacher>/iter_600.pth
#                 model.backbone.teacher.0.allow_random_init=False
#                 model.backbone.teacher.1.checkpoint=<torchvision resnet18>.pth
#                 model.backbone.teacher.1.allow_random_init=False
# (the classifier's num_classes must match its file's fc). model.backbone.balance=
# dict(mode='dynamic', teachers='sample') runs one teacher's pair of paths per step, in turn
# (logged as hkt_teacher), at the cost of a one-teacher step.
_base_ = './faster-rcnn_mobilenetv1_fpn_hybrid-r18_synthetic-citypersons.py'
classifier_teacher = dict(type='torchvision.resnet18', num_classes=1000, checkpoint=None,
                          allow_random_init=True)
model = dict(
    backbone=dict(
        teacher=[dict(name='det', **_base_.teacher),
                 dict(name='cls', **classifier_teacher)]))
