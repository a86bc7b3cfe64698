"""The cheaper step variants through mmengine's real Runner: ``transfer='hybrid_alternate'``
(one hybrid path per iteration, logged as ``hkt_path``) with ``teacher_precision='bf16'``."""
from __future__ import annotations

import math
import warnings

import pytest

from .conftest import converted_config, read_scalars, teacher_spec


def test_alternating_bf16_teacher_run_logs_one_hybrid_path_per_iteration(
        tmp_path, citypersons_root, teacher_checkpoint):
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmengine.runner import Runner

    cfg = converted_config("faster_rcnn", teacher_spec(teacher_checkpoint), citypersons_root,
                           tmp_path / "work")
    cfg.model.backbone.update(transfer="hybrid_alternate", teacher_precision="bf16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = Runner.from_cfg(cfg)
    assert runner.model.backbone.engine.teacher_precision == "bf16"
    runner.train()
    rows = [r for r in read_scalars(tmp_path / "work") if "hkt_alpha" in r]
    # mmengine's iterations 0 and 1: student-first (L1), then teacher-first (L2)
    assert [r["hkt_path"] for r in rows] == [1.0, 2.0]
    for row, key in zip(rows, ("hkt_L1", "hkt_L2")):
        lk, l3, alpha = row[key], row["hkt_L3"], row["hkt_alpha"]
        assert all(math.isfinite(v) and v > 0 for v in (lk, l3))
        assert alpha == pytest.approx(l3 / lk, rel=1e-5)
        # alpha * Lk + L3 = 2 * L3: the hybrid path weighs as much as the student path
        assert row["loss"] == pytest.approx(2 * l3, rel=1e-5)
    assert "hkt_L2" not in rows[0]
    # The plot's rows hold only what each iteration ran, not the other path's earlier value.
    hook = next(h for h in runner.hooks if type(h).__name__ == "HybridKTHook")
    assert [sorted(k for k in r if k in ("hkt_L1", "hkt_L2")) for r in hook._log.rows] == \
        [["hkt_L1"], ["hkt_L2"]]


def test_teacher_precision_is_checked_before_anything_is_built():
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmdet.registry import MODELS

    with pytest.raises(ValueError, match=r"HybridBackbone: teacher_precision='half' must be "
                                         r"one of \['bf16', 'fp16'\] or None"):
        MODELS.build(dict(type="HybridBackbone", student=dict(type="NoSuchBackbone"),
                          teacher=dict(type="ResNet", depth=18), teacher_precision="half"))
