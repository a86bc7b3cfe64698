"""Two iterations of every synthetic config with the real mmengine Runner (CPU), and of the
hybrid one switched to transfer='cwd' (channel-wise distillation)."""
from __future__ import annotations

import math

import pytest
import torch

from .conftest import (HYBRID_CONFIG, SYNTHETIC_STUDENT_CONFIGS, read_scalars, run_config,
                       teacher_options)


@pytest.mark.parametrize("config", SYNTHETIC_STUDENT_CONFIGS, ids=lambda p: p.stem.split("_")[2])
def test_synthetic_config_trains_and_logs(config, tmp_path, data_dirs, teacher_checkpoint):
    transfer_none = "no-teacher" in config.name
    several = "multi-teacher" in config.name  # the trained teacher is the first (GTA5) one
    extra = {} if transfer_none else teacher_options(teacher_checkpoint)
    if several:
        extra = {k.replace(".teacher.", ".teacher.0."): v for k, v in extra.items()}
    # the logged alpha, L1 and L2 of each teacher: unnamed for one, hkt_alpha/<name> for several
    suffixes = ["/gta5", "/digits"] if several else [""]
    runner = run_config(config, tmp_path, data_dirs["cityscapes"], extra=extra, train=False)
    teacher = runner.model.backbone.teacher
    before = None if teacher is None else {k: v.clone() for k, v in teacher.state_dict().items()}
    runner.train()
    rows = [r for r in read_scalars(tmp_path) if "loss" in r]
    assert rows and all("hkt_L3" in r for r in rows)
    assert all(all(f"hkt_alpha{x}" in r for x in suffixes) == ("hybrid" in config.name)
               for r in rows)
    assert "decode.acc_seg" in rows[-1] and "aux.acc_seg" in rows[-1]
    if teacher is not None:  # the student path's own head losses, logged and not summed
        assert {"hkt_L3.decode.ce", "hkt_L3.aux.ce"} <= set(rows[-1])
    assert list(tmp_path.glob("*/vis_data/events.out.tfevents.*"))  # TensorBoard is on
    assert ((tmp_path / "alpha_and_path_losses.png").exists()) == ("hybrid" in config.name)
    if "hybrid" in config.name:
        assert all(k + x in rows[-1] for k in ("hkt_L1", "hkt_L2") for x in suffixes)
        # only the balanced total is summed into the optimised loss
        assert rows[-1]["loss"] == pytest.approx(rows[-1]["loss_hkt"])
        r = rows[-1]
        for x in suffixes:
            if "alpha0.5" in config.name:
                assert r["hkt_alpha"] == pytest.approx(0.5)
            else:
                assert r[f"hkt_alpha{x}"] == pytest.approx(
                    2 * r["hkt_L3"] / (r[f"hkt_L1{x}"] + r[f"hkt_L2{x}"]), rel=1e-4)
    if ("fitnet" in config.name) or ("_at-" in config.name):
        assert "hkt_transfer" in rows[-1]
    if before is not None:
        after = teacher.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), "teacher weights changed"
    assert (tmp_path / "iter_2.pth").exists()


def test_hook_rejects_unfrozen_teacher(tmp_path, data_dirs, teacher_checkpoint):
    from hybridkt_ext.core import TeacherNotFrozenError

    runner = run_config(HYBRID_CONFIG, tmp_path, data_dirs["cityscapes"],
                        extra=teacher_options(teacher_checkpoint), train=False)
    next(runner.model.backbone.teacher.parameters()).requires_grad_(True)
    with pytest.raises(TeacherNotFrozenError, match="before training.*trainable"):
        runner.train()


CWD = {"model.backbone.transfer": "cwd", "model.backbone.cwd": dict(weight=2.0, tau=2.0)}


def test_cwd_trains_the_student_path_plus_its_divergence(tmp_path, data_dirs):
    """transfer='cwd' on the shipped hybrid config: only the student path runs (no alpha, no
    L1/L2), and the optimised loss is its task loss plus the logged channel-wise divergence."""
    runner = run_config(HYBRID_CONFIG, tmp_path, data_dirs["cityscapes"], extra=CWD)
    cwd = runner.model.backbone.transfer_loss  # the options under model.backbone.cwd reached it
    assert type(cwd).__name__ == "ChannelWiseDivergenceLoss" and (cwd.weight, cwd.tau) == (2, 2)
    rows = [r for r in read_scalars(tmp_path) if "loss" in r]
    assert len(rows) == 2
    totals = []
    for r in rows:
        assert "hkt_transfer" in r and "hkt_L3" in r
        assert math.isfinite(r["hkt_transfer"]) and r["hkt_transfer"] > 0
        assert not {"hkt_alpha", "hkt_L1", "hkt_L2"} & set(r)
        totals.append(r["hkt_L3"] + r["hkt_transfer"])
        # mmengine logs keys with "loss" in them as a running mean (LogProcessor's window)
        assert r["loss"] == pytest.approx(sum(totals) / len(totals), rel=1e-5)
    assert not (tmp_path / "alpha_and_path_losses.png").exists()


def test_unknown_cwd_option_is_refused_naming_the_closest(tmp_path, data_dirs):
    extra = {**CWD, "model.backbone.cwd": dict(weigth=2.0)}
    with pytest.raises(ValueError,
                       match=r"HybridBackbone cwd: unknown key 'weigth'\. Did you mean 'weight'\?"):
        run_config(HYBRID_CONFIG, tmp_path, data_dirs["cityscapes"], extra=extra, train=False)
