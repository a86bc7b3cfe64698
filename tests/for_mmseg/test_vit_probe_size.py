"""BEiT and MAE from mmseg's stock configs build as student and as teacher (issue 25, item 7).

Their position tables hold one entry per patch of the declared ``img_size`` (640 for BEiT,
512 for MAE), so the stage probe must run at that size; a fixed small probe made the build fail
with a raw size-mismatch error. One build pairs the stock MAE student with the stock BEiT
teacher (ViT-Base on CPU takes seconds to build); the reverse roles run at a small declared
size, the teacher loaded from a checkpoint, whose loading probes the stages once more.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("mmseg.models", reason="MMSegmentation (with mmcv ops) is not installed")

import mmseg  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

from hybridkt_ext.core import UnsupportedBackboneError  # noqa: E402
from hybridkt_ext.for_mmseg import HybridBackbone  # noqa: E402
from hybridkt_ext.core.stage_cutting import declared_probe_size  # noqa: E402

CONFIG_ROOT = Path(mmseg.__file__).parent / ".mim" / "configs"
MAE = "mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py"
BEIT = "beit/beit-base_upernet_8xb2-160k_ade20k-640x640.py"


def _stock_backbone(name: str) -> dict:
    cfg = Config.fromfile(CONFIG_ROOT / name).model.backbone.to_dict()
    cfg.pop("init_cfg", None)  # the pretrained weights are a download; random init suffices
    return cfg


def test_stock_mae_student_and_stock_beit_teacher_build():
    student, teacher = MAE, BEIT
    init_default_scope("mmseg")
    backbone = HybridBackbone(student=_stock_backbone(student),
                              teacher=dict(_stock_backbone(teacher), allow_random_init=True))
    sizes = {MAE: 512, BEIT: 640}
    assert declared_probe_size(backbone.engine.student.model) == sizes[student]
    assert declared_probe_size(backbone.engine.teacher.model) == sizes[teacher]
    # Four head features, each the end of a stage, at 1/16 of the input.
    for staged in (backbone.engine.student, backbone.engine.teacher):
        assert [s.reduction for s in staged.stage_specs] == [16] * staged.num_stages


def test_a_non_square_img_size_is_refused_with_the_fix():
    init_default_scope("mmseg")
    cfg = dict(type="BEiT", img_size=(64, 96), embed_dims=32, num_layers=2, num_heads=2,
               out_indices=(0, 1))
    with pytest.raises(UnsupportedBackboneError, match="use a square img_size"):
        HybridBackbone(student=cfg, teacher=dict(cfg, img_size=(64, 64), allow_random_init=True))


def test_a_checkpointed_mae_teacher_of_a_beit_student_is_probed_at_img_size(tmp_path):
    # Loading checks which weights the stages read with a probe of its own: at img_size too.
    init_default_scope("mmseg")
    beit = dict(type="BEiT", img_size=96, embed_dims=32, num_layers=2, num_heads=2,
                out_indices=(0, 1))
    mae = dict(beit, type="MAE")
    path = tmp_path / "mae96.pth"
    torch.save({"state_dict": MODELS.build(mae).state_dict()}, path)
    backbone = HybridBackbone(student=beit, teacher=dict(mae, checkpoint=str(path)))
    assert declared_probe_size(backbone.engine.teacher.model) == 96
