"""The Python API on plain PyTorch: a torchvision student and teacher, three paths, balancing.

    python examples/python_api.py [TEACHER.pth]

Without a teacher file it saves a freshly initialised ResNet-50 to a temporary file first, so
the example runs as written (a real run passes a trained teacher's file).
"""
import sys
import tempfile

import torch
import torch.nn.functional as F
import torchvision

from hybridkt_ext import (HybridForward, LossBalancer, align_stages, load_teacher_weights,
                          split_backbone)

student_model = torchvision.models.mobilenet_v2(weights=None, num_classes=10)
teacher_model = torchvision.models.resnet50(weights=None)
teacher_file = sys.argv[1] if len(sys.argv) > 1 else f"{tempfile.mkdtemp()}/teacher.pth"
if len(sys.argv) == 1:
    torch.save(teacher_model.state_dict(), teacher_file)  # stands in for a trained teacher
load_teacher_weights(teacher_model, teacher_file)  # strict, no code run from the file

# Both networks cut into stages before each downsampling layer, merged to shared scales.
student, teacher = align_stages(split_backbone(student_model), split_backbone(teacher_model))
engine = HybridForward(student, teacher, out_indices=(student.num_stages - 1,))  # freezes it
balancer = LossBalancer("dynamic")  # alpha = 2 L3 / (L1 + L2), or "fixed" with fixed_alpha
# The adapters train with the student; the frozen teacher has nothing to train.
optimizer = torch.optim.SGD([p for p in engine.parameters() if p.requires_grad], lr=0.01)


def head_loss(features, labels):  # the student's own classifier on its last stage
    pooled = F.adaptive_avg_pool2d(features[-1], 1).flatten(1)
    return F.cross_entropy(student_model.classifier(pooled), labels)


for step in range(3):
    images, labels = torch.randn(4, 3, 64, 64), torch.randint(0, 10, (4,))
    paths = engine.forward_hybrid(images)  # three lists of student-channel features
    out = balancer(head_loss(paths.student_first, labels), head_loss(paths.teacher_first, labels),
                   head_loss(paths.student, labels))
    optimizer.zero_grad()
    out.total.backward()
    optimizer.step()
    print({k: round(float(v), 4) for k, v in out.log_values().items()})  # hkt_alpha, hkt_L1..3

engine.eval()
logits = student_model.classifier(F.adaptive_avg_pool2d(engine(images)[-1], 1).flatten(1))
print("student path alone at inference:", tuple(logits.shape))
