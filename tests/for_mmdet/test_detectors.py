"""mmdet's shipped two-stage and one-stage detectors, converted by the backbone swap and the
hook, train with hybrid forward through mmengine's Runner and mmdet's own necks and heads."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from .conftest import converted_config, read_scalars, teacher_spec


@pytest.mark.parametrize("detector", ["faster_rcnn", "cascade_rcnn", "retinanet", "fcos"])
def test_converted_detector_trains_three_paths(detector, tmp_path, citypersons_root,
                                               teacher_checkpoint):
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmengine.runner import Runner

    cfg = converted_config(detector, teacher_spec(teacher_checkpoint), citypersons_root,
                           tmp_path / "work")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = Runner.from_cfg(cfg)
    backbone = runner.model.backbone
    teacher_before = {k: v.clone() for k, v in backbone.teacher.state_dict().items()}
    runner.train()

    rows = [r for r in read_scalars(tmp_path / "work") if "hkt_alpha" in r]
    assert len(rows) == 2
    for row in rows:
        l1, l2, l3, alpha = row["hkt_L1"], row["hkt_L2"], row["hkt_L3"], row["hkt_alpha"]
        assert all(math.isfinite(v) and v > 0 for v in (l1, l2, l3))
        assert alpha == pytest.approx(2 * l3 / (l1 + l2), rel=1e-5)
        # What the optimiser saw: alpha (L1 + L2) + L3, the only key mmengine sums.
        assert row["loss"] == pytest.approx(alpha * (l1 + l2) + l3, rel=1e-5)
        # The student path's head losses, logged under keys mmengine does not sum.
        assert any(k.startswith("hkt_L3.") for k in row)
    evaluated = [r for r in read_scalars(tmp_path / "work") if "citypersons/MR2_Reasonable" in r]
    assert evaluated and 0 <= evaluated[-1]["citypersons/MR2_Reasonable"] <= 100
    after = backbone.teacher.state_dict()
    assert all(torch.equal(teacher_before[k], after[k]) for k in teacher_before)
    checkpoint = torch.load(tmp_path / "work" / "iter_2.pth", weights_only=False)
    assert not [k for k in checkpoint["state_dict"] if ".engine.teacher." in k]
    assert checkpoint["meta"]["hybridkt"]["teacher_sha256"]
    _check_export_round_trip(runner, cfg, tmp_path)


def _check_export_round_trip(runner, cfg, tmp_path) -> None:
    """The exported student in the plain detector config gives the hybrid model's detections."""
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint

    from hybridkt_ext.for_openmmlab import export_student_checkpoint, plain_student_config

    exported = export_student_checkpoint(tmp_path / "work" / "iter_2.pth",
                                         tmp_path / "student.pth")
    plain_cfg = plain_student_config(cfg)
    assert "Hybrid" not in str(plain_cfg.model) and not plain_cfg.custom_hooks
    # The CityPersons data and metric have no mmdet equivalent: their import stays.
    assert plain_cfg.custom_imports["imports"] == ["hybridkt_ext.for_mmdet"]
    with DefaultScope.overwrite_default_scope("mmdet"):
        plain = MODELS.build(plain_cfg.model)
    load_checkpoint(plain, str(exported), map_location="cpu", strict=True)
    hybrid = runner.model.eval()
    plain.eval()
    batch = next(iter(runner.val_dataloader))
    with torch.no_grad():
        want, got = hybrid.test_step(batch), plain.test_step(batch)
    for a, b in zip(want, got):
        torch.testing.assert_close(b.pred_instances.bboxes, a.pred_instances.bboxes,
                                   rtol=0, atol=0)
        torch.testing.assert_close(b.pred_instances.scores, a.pred_instances.scores,
                                   rtol=0, atol=0)


def test_a_detector_without_the_hook_refuses_to_train(tmp_path, citypersons_root,
                                                      teacher_checkpoint):
    """Forgetting the hook would train the student alone, silently: refused at the first step."""
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmengine.runner import Runner

    from hybridkt_ext.core import HybridTrainingError

    cfg = converted_config("retinanet", teacher_spec(teacher_checkpoint), citypersons_root,
                           tmp_path / "work")
    cfg.custom_hooks = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = Runner.from_cfg(cfg)
    with pytest.raises(HybridTrainingError, match="HybridKTHook"):
        runner.train()


def test_neck_channels_that_do_not_fit_the_student_are_named(tmp_path, citypersons_root,
                                                             teacher_checkpoint):
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmengine.runner import Runner

    from hybridkt_ext.core import StageMismatchError

    cfg = converted_config("faster_rcnn", teacher_spec(teacher_checkpoint), citypersons_root,
                           tmp_path / "work")
    cfg.model.neck.in_channels = [256, 512, 1024, 2048]  # the R-50 values left in place
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = Runner.from_cfg(cfg)
    with pytest.raises(StageMismatchError, match=r"neck.in_channels=\[64, 128, 256, 512\]"):
        runner.train()
