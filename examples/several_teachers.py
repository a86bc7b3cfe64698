"""Several teachers through the Python API: one student, two frozen teachers, one alpha each.

    python examples/several_teachers.py

Each teacher gets its own adapters and its own student-first and teacher-first paths; the
student path and the prefixes the paths share run once. The balance is per teacher:
alpha_k = 2 L3 / (L1_k + L2_k), total = sum_k alpha_k (L1_k + L2_k) / K + L3 (one teacher:
the paper's eq. 2). The teachers here are freshly initialised stand-ins for trained files.
"""
import torch
import torch.nn.functional as F
import torchvision

from hybridkt_ext import HybridForward, LossBalancer, align_stages, split_backbone
from hybridkt_ext.core import hybrid_path_name

student_model = torchvision.models.mobilenet_v2(weights=None, num_classes=10)
teacher_models = {"imagenet": torchvision.models.resnet50(weights=None),
                  "digits": torchvision.models.resnet18(weights=None, num_classes=10)}

# Each teacher is cut and merged to the student's scales on its own; one student split serves all.
pairs = [align_stages(split_backbone(student_model), split_backbone(m))
         for m in teacher_models.values()]
student = pairs[0][0]
engine = HybridForward(student, [teacher for _, teacher in pairs],
                       teacher_names=tuple(teacher_models), out_indices=(student.num_stages - 1,))
balancer = LossBalancer("dynamic")  # one alpha per teacher (LossBalancer.teachers)
optimizer = torch.optim.SGD([p for p in engine.parameters() if p.requires_grad], lr=0.01)


def head_loss(features, labels):  # the student's own classifier on its last stage
    pooled = F.adaptive_avg_pool2d(features[-1], 1).flatten(1)
    return F.cross_entropy(student_model.classifier(pooled), labels)


for step in range(2):
    images, labels = torch.randn(4, 3, 64, 64), torch.randint(0, 10, (4,))
    paths = engine.forward_hybrid(images)  # the student path and two per teacher
    per_teacher = [tuple(head_loss(paths.path(hybrid_path_name(kind, k)), labels)
                         for kind in ("student_first", "teacher_first"))
                   for k in range(engine.num_teachers)]
    total, balanced = balancer.teachers(per_teacher, head_loss(paths.student, labels),
                                        engine.teacher_names)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    print({f"hkt_alpha/{name}": round(float(b.alpha), 4)
           for name, b in zip(engine.teacher_names, balanced)})
