"""Several teachers in mmseg: the shipped config through train_seg.py, one alpha per teacher,
a one-teacher list equal to the single teacher, sampling, and resume with the teacher list."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import torch

from hybridkt_ext.core import TeacherMismatchError

from .conftest import CONFIGS, HYBRID_CONFIG, REPO, data_options, read_scalars, run_config

MULTI_TEACHER_CONFIG = next(CONFIGS.glob("*multi-teacher*synthetic*.py"))
PER_TEACHER = ("hkt_alpha", "hkt_L1", "hkt_L2")


def test_the_shipped_config_trains_through_train_seg_with_one_alpha_per_teacher(tmp_path,
                                                                             data_dirs):
    options = [f"{k}={v}" for k, v in data_options(data_dirs["cityscapes"]).items()]
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "train_seg.py"), str(MULTI_TEACHER_CONFIG),
         "--work-dir", str(tmp_path), "--cfg-options", "train_cfg.max_iters=4",
         # the logged loss_hkt is then this step's (mmengine averages losses over a window)
         "log_processor.window_size=1", *options],
        cwd=REPO, env=dict(os.environ, PYTHONWARNINGS="ignore"), capture_output=True,
        text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(r) for r in
            next(tmp_path.glob("*/vis_data/scalars.json")).read_text().splitlines()]
    last = next(r for r in reversed(rows) if "hkt_L3" in r)
    assert {f"{k}/{n}" for k in PER_TEACHER for n in ("gta5", "digits")} <= set(last)
    assert "hkt_alpha" not in last  # no unnamed alpha: one per teacher
    # Each alpha_k (L1_k + L2_k) is 2 L3, so the optimised loss is 3 L3 (float32 alpha).
    assert last["loss_hkt"] == pytest.approx(3 * last["hkt_L3"], rel=1e-4)
    checkpoint = torch.load(tmp_path / "iter_4.pth", map_location="cpu", weights_only=False)
    assert not [k for k in checkpoint["state_dict"] if ".engine.teacher." in k]
    assert checkpoint["meta"]["hybridkt"]["teacher_tensors"] > 0
    assert (tmp_path / "alpha_and_path_losses.png").stat().st_size > 0


def _with_teachers(config_path, teachers) -> object:
    from mmengine.config import Config

    cfg = Config.fromfile(str(config_path))
    cfg.model.backbone.teacher = teachers
    return cfg


def test_a_one_teacher_list_trains_exactly_as_the_single_teacher(tmp_path, data_dirs):
    from mmengine.config import Config

    single = Config.fromfile(str(HYBRID_CONFIG))
    listed = copy.deepcopy(single)
    listed.model.backbone.teacher = [dict(name="gta5", **single.model.backbone.teacher)]
    logged = []
    for name, cfg in (("single", single), ("listed", listed)):
        run_config(cfg, tmp_path / name, data_dirs["cityscapes"], iters=2)
        logged.append([{k: v for k, v in r.items() if k.startswith(("hkt_", "loss"))}
                       for r in read_scalars(tmp_path / name) if "hkt_L3" in r])
    assert logged[0] == logged[1] and "hkt_alpha" in logged[0][-1]


def test_sampling_trains_one_teacher_per_step_in_turn(tmp_path, data_dirs):
    from mmengine.config import Config

    cfg = Config.fromfile(str(MULTI_TEACHER_CONFIG))
    cfg.model.backbone.balance = dict(mode="dynamic", teachers="sample")
    runner = run_config(cfg, tmp_path, data_dirs["cityscapes"], iters=2)
    rows = [r for r in read_scalars(tmp_path) if "hkt_L3" in r]
    assert [r["hkt_teacher"] for r in rows] == [0.0, 1.0]
    hook = next(h for h in runner.hooks if type(h).__name__ == "HybridKTHook")
    # The plot's rows keep only the teacher each step trained (the other's are stale).
    assert [sorted(k for k in row if "/" in k) for row in hook._log.rows] == [
        [f"{k}/gta5" for k in ("hkt_L1", "hkt_L2", "hkt_alpha")],
        [f"{k}/digits" for k in ("hkt_L1", "hkt_L2", "hkt_alpha")]]


def test_resuming_with_the_teachers_reordered_is_refused(tmp_path, data_dirs):
    built = run_config(MULTI_TEACHER_CONFIG, tmp_path / "build", data_dirs["cityscapes"],
                       train=False)
    engine = built.model.backbone.engine
    files = []
    for name, teacher in zip(engine.teacher_names, engine.teachers):
        prefix = "backbone." if name == "gta5" else ""
        path = tmp_path / f"{name}.pth"
        torch.save({"state_dict": {prefix + k: v for k, v in teacher.model.state_dict().items()}},
                   path)
        files.append(path)
    cfg = _with_teachers(MULTI_TEACHER_CONFIG, [
        dict(spec, checkpoint=str(path), allow_random_init=False)
        for spec, path in zip(built.cfg.model.backbone.teacher, files)])
    run_config(cfg, tmp_path / "run", data_dirs["cityscapes"], iters=2)
    again = copy.deepcopy(cfg)
    again.resume = True
    run_config(again, tmp_path / "run", data_dirs["cityscapes"], iters=3)  # same list: resumes
    reordered = copy.deepcopy(again)
    reordered.model.backbone.teacher = list(reversed(again.model.backbone.teacher))
    with pytest.raises(TeacherMismatchError, match="not the teacher this checkpoint"):
        run_config(reordered, tmp_path / "run", data_dirs["cityscapes"], iters=4)


def test_several_teachers_are_refused_where_they_cannot_train(tmp_path, data_dirs):
    from hybridkt_ext.core import StageMismatchError
    from hybridkt_ext.for_openmmlab.hybrid_backbone import _same_student_stages

    teachers = _shipped_teachers()
    cases = [
        ([], {}, ValueError, r"teacher=\[\] lists no teacher"),
        (teachers, {"model.backbone.transfer": "fitnet"}, ValueError, "takes one teacher"),
        ([dict(t, name="same") for t in teachers], {}, ValueError, "repeat one"),
    ]
    for k, (listed, options, error, message) in enumerate(cases):
        cfg = _with_teachers(MULTI_TEACHER_CONFIG, listed)
        cfg.merge_from_dict(options)
        with pytest.raises(error, match=message):
            run_config(cfg, tmp_path / str(k), data_dirs["cityscapes"], train=False)
    # Teachers whose stages would split the student differently (a detection student uses
    # only some stages, so each teacher can merge the others its own way): one student has
    # one set of stages.
    with pytest.raises(StageMismatchError, match="one set of stages for all its teachers"):
        _same_student_stages([(None, None, None, [[0], [1], [2]]),
                              (None, None, None, [[0, 1], [2]])], ("gta5", "digits"))


def _shipped_teachers() -> list[dict]:
    from mmengine.config import Config

    return list(Config.fromfile(str(MULTI_TEACHER_CONFIG)).model.backbone.teacher)
