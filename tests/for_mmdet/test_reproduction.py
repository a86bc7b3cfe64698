"""The detection experiment (Table 4 analogue) on MMDetection, as ``tools/reproduce.py
--experiments detection`` runs it where detectron2 is absent: its commands are the real tool's
command lines, and a tiny end-to-end run fills the tables from real training logs."""
from __future__ import annotations

import json
import math

import pytest

from hybridkt_ext.reproduction import detection, detection_mmdet
from hybridkt_ext.reproduction.runner import run_experiments


def _config_of(command: list[str]):
    """The config the training tool would train with for ``command`` (its own parsing)."""
    from hybridkt_ext.for_openmmlab import training_tool

    assert command[1:3] == ["-m", "hybridkt_ext.cli.train_det"]
    return training_tool.load_config(training_tool.parse_args(command[3:]))


def test_the_configs_schedule_is_used_as_is_and_a_shorter_one_keeps_its_shape(tmp_path):
    assert detection_mmdet.schedule(None)[0] == [] and detection_mmdet.schedule(600)[0] == []
    assert "600 iterations, batch 2, lr 0.02 (x0.1 at [450], 50 warm-up)" in \
        detection_mmdet.schedule(None)[1]
    options, described = detection_mmdet.schedule(300)
    cfg = _config_of(detection_mmdet.command("hybrid", 0, tmp_path / "run", tmp_path / "t.pth",
                                             None, options))
    assert cfg.train_cfg.max_iters == 300 and cfg.train_cfg.val_interval == 300
    assert cfg.default_hooks.logger.interval == 20  # the configs' own: 15 points of alpha
    assert _config_of(detection_mmdet.command("hybrid", 0, tmp_path, tmp_path / "t.pth", None,
                                              detection_mmdet.schedule(50)[0])
                      ).default_hooks.logger.interval == 5  # a short run logs as often
    warmup, steps = cfg.param_scheduler
    assert (warmup.end, steps.end, steps.milestones) == (30, 300, [225])
    assert described == "300 iterations, batch 2, lr 0.02 (x0.1 at [225], 30 warm-up)"
    for mode in detection_mmdet.CONFIGS:  # every mode the experiment runs exists
        assert detection_mmdet.config(mode).is_file(), mode


def test_each_run_trains_its_mode_with_its_seed_teacher_and_alpha(tmp_path):
    teacher = tmp_path / "teacher.pth"
    fixed = _config_of(detection_mmdet.command("fixed", 3, tmp_path / "run", teacher, 0.5, []))
    assert fixed.randomness.seed == 3 and fixed.work_dir == str(tmp_path / "run")
    assert fixed.model.backbone.teacher.checkpoint == str(teacher)
    assert fixed.model.backbone.teacher.allow_random_init is False
    assert fixed.model.backbone.balance == dict(mode="fixed", fixed_alpha=0.5)
    none = _config_of(detection_mmdet.command("none", 1, tmp_path / "run", teacher, None, []))
    assert none.model.backbone.transfer == "none" and none.model.backbone.teacher is None
    for mode in ("fitnet", "at", "hybrid"):
        cfg = _config_of(detection_mmdet.command(mode, 0, tmp_path / "run", teacher, None, []))
        assert cfg.model.backbone.transfer == mode


def test_the_digits_teacher_loads_into_the_configs_resnet18_teacher(tmp_path):
    import torch
    import torchvision

    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    torch.manual_seed(0)
    classifier = torchvision.models.resnet18(num_classes=10).state_dict()
    teacher = detection_mmdet.write_teacher(classifier, tmp_path / "teacher.pth")
    cfg = _config_of(detection_mmdet.command("hybrid", 0, tmp_path / "run", teacher, None, []))
    with DefaultScope.overwrite_default_scope("mmdet"):
        backbone = MODELS.build(cfg.model.backbone)
    assert not backbone.teacher_random_init
    loaded = backbone.teacher.model.state_dict()
    used = [k for k in classifier if not k.startswith("fc.")]
    assert set(used) <= set(loaded)  # every stage weight of the digits classifier ...
    for key in used:  # ... is the teacher's, value for value
        assert torch.equal(loaded[key], classifier[key]), key


@pytest.fixture
def tiny_experiment(tmp_path, monkeypatch):
    """Two iterations of no teacher and hybrid forward, seed 0, on the configs' own synthetic
    data (generated under the working directory, as for a user), a random digits teacher."""
    import torch
    import torchvision

    torch.manual_seed(0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(detection, "digits_teacher",
                        lambda work: torchvision.models.resnet18(num_classes=10).state_dict())
    lines: list[str] = []
    summary = run_experiments(["detection"], tmp_path / "out", tmp_path / "work", seeds=[0],
                              quick=True, progress=lines.append, iters=2, framework="mmdet")
    return tmp_path, summary, lines


def test_a_tiny_mmdet_experiment_fills_table4_from_the_training_logs(tiny_experiment):
    root, summary, lines = tiny_experiment
    assert summary["detection"]["settings"]["framework"] == "mmdet"
    table = json.loads((root / "out" / "table4_detection.json").read_text())["summary"]
    assert set(table) == {"w/o teacher", "hybrid forward"}
    for row in table.values():
        for metric in detection.METRICS:
            (value,) = row[metric]["values"]
            assert math.isfinite(value) and 0.0 <= value <= 100.0
    hybrid = root / "work" / "detection" / "mmdet" / "seed0" / "hybrid"
    assert detection_mmdet.final_metrics(hybrid) == {
        m: table["hybrid forward"][m]["values"][0] for m in detection.METRICS}
    rows = detection_mmdet.alpha_rows(hybrid)
    assert rows and all(r["hkt_alpha"] > 0 and {"hkt_L1", "hkt_L2", "hkt_L3"} <= set(r)
                        for r in rows)
    assert not detection_mmdet.alpha_rows(hybrid.parent / "none")  # no teacher, no alpha
    assert any(line.startswith("[det mmdet] seed 0 hybrid:") for line in lines)
    assert "mmdet, Faster R-CNN FPN" in (root / "out" / "table4_detection.md").read_text()
