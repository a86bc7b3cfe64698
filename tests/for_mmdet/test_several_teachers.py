"""Several teachers in mmdet: the shipped two-teacher config through train_det.py (one alpha per
teacher, loss_hkt = 3 hkt_L3, no teacher in the checkpoint, a student export plain mmdet loads),
a one-teacher list equal to the single teacher, and sampling one teacher per step."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch

from .conftest import REPO, SMALL, read_scalars
from .test_tools import SYNTHETIC_HYBRID, _data_options, _tool

MULTI_TEACHER_CONFIG = next((REPO / "configs" / "mmdet").glob("*multi-teacher*synthetic*.py"))
NAMES = ("det", "cls")
PER_TEACHER = ("hkt_alpha", "hkt_L1", "hkt_L2")


def _config(path):
    from mmengine.config import Config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Config.fromfile(str(path))


def _train(cfg, work_dir, data_root, iters: int = 2):
    """The real mmengine Runner on ``cfg`` (copied), ``iters`` steps on the small data."""
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmengine.runner import Runner

    cfg = copy.deepcopy(cfg)
    options = {"train_cfg.max_iters": iters, "train_cfg.val_interval": iters,
               "default_hooks.logger.interval": 1, "default_hooks.checkpoint.interval": iters,
               # each row one step's values (mmengine averages loss keys over a window)
               "log_processor.window_size": 1,
               # the same seed, so two runs can be compared value for value
               "randomness": dict(seed=0),
               "val_evaluator.data_root": str(data_root),
               # Visualizers are named singletons: a fresh name per run in this process.
               "visualizer.name": f"vis_{work_dir.name}_{id(work_dir)}"}
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        options[f"{loader}.dataset.data_root"] = str(data_root)
        options[f"{loader}.dataset.synthetic.num_train"] = SMALL["num_train"]
        options[f"{loader}.dataset.synthetic.num_val"] = SMALL["num_val"]
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = Runner.from_cfg(cfg)
        runner.train()
    return runner


def test_the_shipped_config_trains_through_train_det_with_one_alpha_per_teacher_and_exports(
        tmp_path, citypersons_root):
    work = tmp_path / "work"
    done = _tool("train_det.py", str(MULTI_TEACHER_CONFIG), "--work-dir", str(work),
                 "--cfg-options", "train_cfg.max_iters=3", "train_cfg.val_interval=3",
                 "default_hooks.checkpoint.interval=3", "log_processor.window_size=1",
                 "default_hooks.logger.interval=1", *_data_options(citypersons_root))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [r for r in read_scalars(work) if "hkt_L3" in r]
    assert [r["iter"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert {f"{k}/{n}" for k in PER_TEACHER for n in NAMES} <= set(row)
        assert "hkt_alpha" not in row  # no unnamed alpha: one per teacher
        # Each alpha_k (L1_k + L2_k) is 2 L3, so the optimised loss is 3 L3 (float32 alpha).
        assert row["loss_hkt"] == pytest.approx(3 * row["hkt_L3"], rel=1e-4)
        for name in NAMES:
            assert row[f"hkt_alpha/{name}"] == pytest.approx(
                2 * row["hkt_L3"] / (row[f"hkt_L1/{name}"] + row[f"hkt_L2/{name}"]), rel=1e-4)
    # The random-teacher warning names the options a list's teachers are set by.
    log = done.stdout + done.stderr
    assert ("model.backbone.teacher.0.checkpoint, model.backbone.teacher.1.checkpoint to a "
            "trained teacher") in log
    checkpoint = torch.load(work / "iter_3.pth", map_location="cpu", weights_only=False)
    assert not [k for k in checkpoint["state_dict"] if ".engine.teacher." in k]
    assert checkpoint["meta"]["hybridkt"]["teacher_tensors"] > 0
    assert (work / "alpha_and_path_losses.png").stat().st_size > 0
    _check_the_exported_student(work / "iter_3.pth", tmp_path / "student.pth")


def _check_the_exported_student(trained, out) -> None:
    """The student export holds no teacher or adapter; plain mmdet loads it strictly and gives
    the hybrid model's features."""
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint

    from hybridkt_ext.for_openmmlab import export_student_checkpoint, plain_student_config

    exported = export_student_checkpoint(trained, out)
    keys = list(torch.load(exported, map_location="cpu", weights_only=False)["state_dict"])
    assert keys and not [k for k in keys if "teacher" in k or "engine" in k
                         or "to_student" in k or "to_teacher" in k]
    cfg = _config(MULTI_TEACHER_CONFIG)
    plain_cfg = plain_student_config(cfg)
    assert "Hybrid" not in str(plain_cfg.model) and not plain_cfg.custom_hooks
    with DefaultScope.overwrite_default_scope("mmdet"):
        plain = MODELS.build(plain_cfg.model)
        hybrid = MODELS.build(cfg.model)
    load_checkpoint(plain, str(exported), map_location="cpu", strict=True)
    load_checkpoint(hybrid, str(trained), map_location="cpu", strict=True)
    image = torch.rand(1, 3, 128, 256)
    with torch.no_grad():
        want, got = hybrid.eval().extract_feat(image), plain.eval().extract_feat(image)
    for a, b in zip(want, got, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)


def test_a_one_teacher_list_trains_exactly_as_the_single_teacher(tmp_path, citypersons_root):
    single = _config(SYNTHETIC_HYBRID)
    listed = copy.deepcopy(single)
    listed.model.backbone.teacher = [dict(name="det", **single.model.backbone.teacher)]
    logged = []
    for name, cfg in (("single", single), ("listed", listed)):
        _train(cfg, tmp_path / name, citypersons_root)
        logged.append([{k: v for k, v in r.items() if k.startswith(("hkt_", "loss"))}
                       for r in read_scalars(tmp_path / name) if "hkt_L3" in r])
    assert len(logged[0]) == 2 and logged[0] == logged[1]
    assert "hkt_alpha" in logged[0][-1] and not [k for k in logged[1][-1] if "/" in k]
    # Only the random-teacher warning tells them apart: it names the option each form takes.
    for name, option in (("single", "teacher.checkpoint"), ("listed", "teacher.0.checkpoint")):
        log = next((tmp_path / name).glob("*/*.log")).read_text()
        assert f"set model.backbone.{option} to a trained teacher" in log


def test_sampling_trains_one_teacher_per_step_in_turn(tmp_path, citypersons_root):
    cfg = _config(MULTI_TEACHER_CONFIG)
    cfg.model.backbone.balance = dict(mode="dynamic", teachers="sample")
    runner = _train(cfg, tmp_path, citypersons_root)
    rows = [r for r in read_scalars(tmp_path) if "hkt_L3" in r]
    assert [r["hkt_teacher"] for r in rows] == [0.0, 1.0]
    hook = next(h for h in runner.hooks if type(h).__name__ == "HybridKTHook")
    # The plot's rows keep only the teacher each step trained (the other's are stale).
    assert [sorted(k for k in row if "/" in k) for row in hook._log.rows] == [
        [f"{k}/{n}" for k in ("hkt_L1", "hkt_L2", "hkt_alpha")] for n in NAMES]
    # A sampled step trains one teacher's pair of paths: alpha_k (L1_k + L2_k) + L3 = 3 L3.
    assert all(r["loss_hkt"] == pytest.approx(3 * r["hkt_L3"], rel=1e-4) for r in rows)
