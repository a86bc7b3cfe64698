"""The training-FLOP count of the matched-compute experiment on the shipped synthetic mmseg
configs: a real 2-iteration Runner run per transfer mode under torch's FLOP counter."""
from __future__ import annotations

import pytest
from mmengine.config import Config

from hybridkt_ext.reproduction.openmmlab_flops import training_flops_per_iter
from tests.for_mmseg.conftest import CONFIGS, HYBRID_CONFIG, data_options

NO_TEACHER = CONFIGS / "deeplabv3_r18w8-d8_no-teacher_1xb4-400_synthetic-cityscapes-64x128.py"


def _config(path, data_root, **extra) -> Config:
    import hybridkt_ext.for_mmseg  # noqa: F401

    cfg = Config.fromfile(str(path))
    cfg.merge_from_dict({**data_options(data_root), "train_dataloader.batch_size": 2, **extra})
    return cfg


def test_each_mode_costs_what_its_paths_run(tmp_path, data_dirs):
    root = data_dirs["cityscapes"]
    hybrid_cfg = _config(HYBRID_CONFIG, root)
    flops = {"none": training_flops_per_iter(_config(NO_TEACHER, root), tmp_path / "none")}
    for mode in ("hybrid", "hybrid_alternate"):
        cfg = _config(HYBRID_CONFIG, root, **{"model.backbone.transfer": mode})
        flops[mode] = training_flops_per_iter(cfg, tmp_path / mode)
    # Three paths (two through the wider teacher's stages) > one hybrid path beside the
    # student's > the student alone.
    assert flops["hybrid"] > flops["hybrid_alternate"] > 1.5 * flops["none"] > 0
    # Twice the batch, twice the arithmetic: the count is of the real steps.
    double = _config(NO_TEACHER, root, **{"train_dataloader.batch_size": 4})
    assert training_flops_per_iter(double, tmp_path / "none4") / flops["none"] == \
        pytest.approx(2.0, rel=0.02)
    # The probe changes neither the config it was given nor writes a checkpoint.
    assert hybrid_cfg.train_cfg.max_iters == 400
    assert not list(tmp_path.rglob("*.pth"))
