"""mmseg's ``init_model`` on a hybrid checkpoint (no teacher inside, as HybridKTHook writes it)
says nothing about the teacher's keys, and still names a student key that really is missing."""
from __future__ import annotations

import torch

from tests.for_mmseg.conftest import HYBRID_CONFIG

TEACHER_PREFIX = "backbone.engine.teacher."


def test_init_model_is_quiet_about_the_teacher_and_not_about_the_student(tmp_path, capsys):
    from mmengine.config import Config
    from mmseg.apis import init_model

    import hybridkt_ext.for_mmseg  # noqa: F401

    cfg = Config.fromfile(str(HYBRID_CONFIG))
    cfg.model.backbone.teacher.checkpoint = None
    cfg.model.backbone.teacher.allow_random_init = True  # no teacher file in this test
    model = init_model(cfg, None, device="cpu")
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(TEACHER_PREFIX)}
    assert len(state) < len(model.state_dict())  # the model has a teacher to leave out
    dropped = next(k for k in state if k.startswith("backbone.engine.student.")
                   and k.endswith("conv1.weight"))
    del state[dropped]
    checkpoint = tmp_path / "hybrid.pth"
    torch.save({"state_dict": state, "meta": {}}, checkpoint)
    capsys.readouterr()

    loaded = init_model(cfg, str(checkpoint), device="cpu")
    printed = "".join(capsys.readouterr())
    assert "engine.teacher" not in printed, printed[:2000]
    assert dropped in printed  # a real missing student key is still reported
    teacher, built = loaded.backbone.teacher.state_dict(), model.backbone.teacher.state_dict()
    assert teacher.keys() == built.keys()
