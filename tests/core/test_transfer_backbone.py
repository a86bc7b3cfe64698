"""``TransferBackbone``: the one forward rule, the step and the pixel convention of every
framework's hybrid backbone."""
from __future__ import annotations

import pytest
import torch

from hybridkt_ext.core import (HybridForward, HybridTrainingError, InputConvention,
                               TransferBackbone, TransferSettings)
from tests.toy_models import ToyNet, head_loss, make_engine, staged

IMAGENET_RGB = InputConvention((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), "RGB")


class TupleBackbone(TransferBackbone):
    """The smallest framework adapter: features as a tuple, like mmseg's necks expect."""

    transfer_key = "Toy: transfer"
    wiring_hint = "wire it."

    def __init__(self, transfer: str = "hybrid", student_input_given: bool = False,
                 teacher_input: InputConvention | None = None, **options) -> None:
        super().__init__()
        settings = TransferSettings.check(transfer, None, options, owner="Toy")
        if settings.mode.needs_teacher:
            engine, _ = make_engine(hybrid_paths=settings.mode.hybrid_paths)
        else:
            engine = HybridForward(staged(ToyNet()))
        self.setup_transfer(engine, settings, teacher_input, student_input_given)

    def forward(self, x):
        return tuple(self.transfer_features(x))

    def plain_student_features(self, x):
        """ToyNet's own forward gives logits: its stage outputs, as a plain backbone's."""
        features = []
        for block in self.student.features:
            x = block(x)
            features.append(x)
        return features


def test_outside_a_step_the_backbone_is_the_plain_student(one_thread):
    backbone = TupleBackbone().eval()
    x = torch.randn(2, 3, 16, 16)
    got = backbone(x)
    for a, b in zip(got, backbone.plain_student_features(x)):
        assert torch.equal(a, b)  # bit for bit: validation and export are the plain student
    for a, b in zip(got, backbone.engine.forward_hybrid(x).student):  # what the heads trained on
        torch.testing.assert_close(a, b)
    assert backbone.student is backbone.engine.student.model
    assert backbone.teacher is backbone.engine.teacher


def test_a_training_forward_outside_the_step_is_refused_with_the_wiring_hint():
    backbone = TupleBackbone().train()
    with pytest.raises(HybridTrainingError, match=r"Toy: transfer='hybrid'.*train the student "
                                                  r"alone: wire it\."):
        backbone(torch.randn(2, 3, 16, 16))
    with torch.no_grad():  # evaluation under model.train() (a hook's sanity check) is fine
        backbone(torch.randn(2, 3, 16, 16))
    TupleBackbone("none").train()(torch.randn(2, 3, 16, 16))  # no teacher: nothing to lose


def test_during_a_step_the_backbone_yields_each_path(one_thread):
    backbone = TupleBackbone().train()
    head = backbone.student.fc
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([0, 2])
    result = backbone.transfer_step.run(lambda: {"ce": head_loss(head, list(backbone(x)), y)},
                                        lambda d: d["ce"])
    assert set(result.log_values) == {"hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3"}


def test_a_mimicking_loss_is_registered_on_the_backbone():
    backbone = TupleBackbone("fitnet", fitnet=dict(weight=2.0))
    assert backbone.transfer_loss.weight == 2.0
    assert any(k.startswith("transfer_loss.") for k in backbone.state_dict())
    assert TupleBackbone("hybrid").transfer_loss is None


def test_the_frameworks_pixel_convention_becomes_the_students_unless_fixed():
    backbone = TupleBackbone(teacher_input=IMAGENET_RGB)
    bgr = InputConvention(IMAGENET_RGB.mean[::-1], IMAGENET_RGB.std[::-1], "BGR")
    before = backbone.engine.teacher_input
    backbone.adopt_student_input(bgr)
    transform = backbone.engine.teacher_input
    assert transform is not before
    x = torch.randn(1, 3, 4, 4)  # a BGR image normalised the BGR way ...
    rgb_normalised = x.flip(1)  # ... is the RGB-normalised image with its channels flipped
    torch.testing.assert_close(transform(x), rgb_normalised)
    fixed = TupleBackbone(student_input_given=True, teacher_input=IMAGENET_RGB)
    kept = fixed.engine.teacher_input
    fixed.adopt_student_input(bgr)
    assert fixed.engine.teacher_input is kept


def test_a_hybrid_mode_needs_an_engine_with_hybrid_paths():
    class Broken(TransferBackbone):
        pass

    engine, _ = make_engine(hybrid_paths=False)
    with pytest.raises(ValueError, match="hybrid_paths=True"):
        Broken().setup_transfer(engine, TransferSettings.check("hybrid"))
