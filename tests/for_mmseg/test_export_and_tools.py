"""Student export round trip (plain mmseg, no hybridkt) and the CLI tools as subprocesses."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import torch

from .conftest import HYBRID_CONFIG, REPO, data_options, run_config, teacher_options

PLAIN_LOADER = textwrap.dedent("""
    import sys, torch
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS
    cfg = Config.fromfile(sys.argv[1])
    model = MODELS.build(cfg.model)
    load_checkpoint(model, sys.argv[2], map_location='cpu', strict=True)
    model.eval()
    with torch.no_grad():
        logits = model._forward(torch.load(sys.argv[3]))
    torch.save(logits, sys.argv[4])
    assert not [m for m in sys.modules if m.startswith('hybridkt_ext')], 'hybridkt imported'
""")


def _run(args: list[str], cwd=REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_export_round_trip_gives_identical_logits(tmp_path, data_dirs, teacher_checkpoint):
    runner = run_config(HYBRID_CONFIG, tmp_path / "run", data_dirs["cityscapes"],
                        extra=teacher_options(teacher_checkpoint))
    ckpt = tmp_path / "run" / "iter_2.pth"
    out, plain_cfg = tmp_path / "student.pth", tmp_path / "student_cfg.py"
    tool = [str(REPO / "tools" / "export_seg_student.py"), str(HYBRID_CONFIG), str(ckpt),
            str(out), "--plain-config", str(plain_cfg)]
    done = _run(tool)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "hybridkt" not in plain_cfg.read_text() and "HybridBackbone" not in plain_cfg.read_text()
    refused = _run(tool)
    assert refused.returncode != 0 and "--overwrite" in refused.stderr
    images = torch.randn(2, 3, 64, 128)
    torch.save(images, tmp_path / "x.pt")
    done = _run(["-c", PLAIN_LOADER, str(plain_cfg), str(out), str(tmp_path / "x.pt"),
                 str(tmp_path / "plain.pt")], cwd=tmp_path)  # cwd: no repo on sys.path
    assert done.returncode == 0, done.stderr[-3000:]
    model = runner.model
    model.eval()
    with torch.no_grad():
        expected = model._forward(images)
    assert torch.equal(torch.load(tmp_path / "plain.pt"), expected)


def test_train_seg_writes_alpha_to_scalars_and_test_seg_evaluates_it(tmp_path, data_dirs):
    options = [f"{k}={v}" for k, v in data_options(data_dirs["cityscapes"]).items()]
    done = _run([str(REPO / "tools" / "train_seg.py"), str(HYBRID_CONFIG),
                 "--work-dir", str(tmp_path), "--cfg-options", "train_cfg.max_iters=4",
                 *options])
    assert done.returncode == 0, done.stderr[-3000:]
    scalars = next(tmp_path.glob("*/vis_data/scalars.json")).read_text().splitlines()
    rows = [json.loads(r) for r in scalars]
    assert any("hkt_alpha" in r and "hkt_L1" in r for r in rows)

    done = _run([str(REPO / "tools" / "test_seg.py"), str(HYBRID_CONFIG),
                 str(tmp_path / "iter_4.pth"), "--work-dir", str(tmp_path / "test"),
                 "--cfg-options", *options])
    assert done.returncode == 0, done.stderr[-3000:]
    # The printed metrics dict, e.g. {'aAcc': np.float64(61.2), 'mIoU': ..., 'mAcc': ...}.
    metrics = dict(re.findall(r"'(\w+)': (?:np\.float\d+\()?([-\d.]+)",
                              done.stdout.strip().splitlines()[-1]))
    assert set(metrics) >= {"aAcc", "mIoU", "mAcc"}, done.stdout[-500:]
    assert 0.0 <= float(metrics["mIoU"]) <= 100.0


def test_train_seg_reports_a_missing_teacher_in_one_line(tmp_path, data_dirs):
    options = [f"{k}={v}" for k, v in data_options(data_dirs["cityscapes"]).items()]
    done = _run([str(REPO / "tools" / "train_seg.py"), str(HYBRID_CONFIG),
                 "--work-dir", str(tmp_path), "--cfg-options", "train_cfg.max_iters=4",
                 f"model.backbone.teacher.checkpoint={tmp_path / 'gone.pth'}",
                 "model.backbone.teacher.allow_random_init=False", *options])
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("train_seg: TeacherCheckpointError:") and "gone.pth" in last
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.pth"))


def _miou(stdout: str) -> float:
    metrics = dict(re.findall(r"'(\w+)': (?:np\.float\d+\()?([-\d.]+)",
                              stdout.strip().splitlines()[-1]))
    return float(metrics["mIoU"])


def test_test_seg_evaluates_the_student_alone_without_the_teacher_file(tmp_path, data_dirs,
                                                                       teacher_checkpoint):
    import shutil

    teacher = tmp_path / "teacher.pth"
    shutil.copy(teacher_checkpoint, teacher)
    run_config(HYBRID_CONFIG, tmp_path / "run", data_dirs["cityscapes"],
               extra=teacher_options(teacher))
    teacher.unlink()  # evaluation runs the student alone
    options = [f"{k}={v}" for k, v in data_options(data_dirs["cityscapes"]).items()]
    options += [f"{k}={v}" for k, v in teacher_options(teacher).items()]
    hybrid = _run([str(REPO / "tools" / "test_seg.py"), str(HYBRID_CONFIG),
                   str(tmp_path / "run" / "iter_2.pth"), "--work-dir", str(tmp_path / "t1"),
                   "--cfg-options", *options])
    assert hybrid.returncode == 0, hybrid.stderr[-3000:]
    exported = tmp_path / "student.pth"
    done = _run([str(REPO / "tools" / "export_seg_student.py"), str(HYBRID_CONFIG),
                 str(tmp_path / "run" / "iter_2.pth"), str(exported)])
    assert done.returncode == 0, done.stderr[-2000:]
    meta = torch.load(exported, map_location="cpu")["meta"]
    assert meta["dataset_meta"]["classes"][0] == "road"  # class names and palette kept
    student = _run([str(REPO / "tools" / "test_seg.py"), str(HYBRID_CONFIG), str(exported),
                    "--work-dir", str(tmp_path / "t2"), "--cfg-options", *options])
    assert student.returncode == 0, student.stderr[-3000:]
    assert _miou(student.stdout) == _miou(hybrid.stdout)


def test_train_seg_amp_without_a_gpu_fails_before_building(tmp_path):
    if torch.cuda.is_available():
        import pytest

        pytest.skip("checks the CPU refusal")
    done = _run([str(REPO / "tools" / "train_seg.py"), str(HYBRID_CONFIG), "--amp",
                 "--work-dir", str(tmp_path)])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "train_seg: ValueError: --amp needs a CUDA GPU (mmengine's AmpOptimWrapper runs CUDA "
        "autocast only); drop --amp on this machine.")
    assert not list(tmp_path.iterdir())  # nothing was built or written


def test_plot_alpha_overlays_a_hybrid_and_a_baseline_run(tmp_path, data_dirs, teacher_checkpoint):
    from .conftest import CONFIGS

    baseline = CONFIGS / "deeplabv3_r18w8-d8_no-teacher_1xb4-400_synthetic-cityscapes-64x128.py"
    run_config(HYBRID_CONFIG, tmp_path / "hybrid", data_dirs["cityscapes"],
               extra=teacher_options(teacher_checkpoint))
    run_config(baseline, tmp_path / "baseline", data_dirs["cityscapes"])
    assert (tmp_path / "hybrid" / "alpha_and_path_losses.png").exists()  # by HybridKTHook
    done = _run([str(REPO / "tools" / "plot_alpha.py"), str(tmp_path / "hybrid"),
                 str(tmp_path / "baseline"), "--out", str(tmp_path / "both.png")])
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "both.png").stat().st_size > 0
    missing = _run([str(REPO / "tools" / "plot_alpha.py"), str(tmp_path / "nothing")])
    assert missing.returncode == 1 and "no */vis_data/scalars.json" in missing.stderr


def test_export_never_writes_onto_its_checkpoint_through_a_link(tmp_path):
    checkpoint = tmp_path / "iter_2.pth"
    checkpoint.write_bytes(b"the run's only checkpoint")  # refused before it is read
    (tmp_path / "link.pth").symlink_to(checkpoint)
    os.link(checkpoint, tmp_path / "hard.pth")
    for out, how in ((tmp_path / "link.pth", "through a symbolic link"),
                     (tmp_path / "hard.pth", "under another name: a hard link")):
        done = _run([str(REPO / "tools" / "export_seg_student.py"), str(HYBRID_CONFIG),
                     str(checkpoint), str(out), "--overwrite"])
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [
            f"export_seg_student: OutputIsInputError: {out} is {checkpoint} (the same file "
            f"{how}), which this export reads or writes; write each output to a path of its "
            "own (it would be lost, --overwrite or not)."]
    assert checkpoint.read_bytes() == b"the run's only checkpoint"
    assert (tmp_path / "link.pth").is_symlink()
    assert (tmp_path / "hard.pth").read_bytes() == b"the run's only checkpoint"


def test_test_seg_writes_no_label_maps_into_the_test_images(tmp_path):
    images = tmp_path / "data" / "leftImg8bit" / "val"
    images.mkdir(parents=True)
    (images / "a_leftImg8bit.png").write_bytes(b"an image")
    checkpoint = tmp_path / "iter_2.pth"
    checkpoint.write_bytes(b"weights")
    done = _run([str(REPO / "tools" / "test_seg.py"), str(HYBRID_CONFIG), str(checkpoint),
                 "--out", str(images), "--work-dir", str(tmp_path / "work"), "--cfg-options",
                 f"test_dataloader.dataset.data_root={tmp_path / 'data'}"])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"test_seg: OutputIsInputError: {images} is inside {tmp_path / 'data'}, a folder "
        "test_seg reads files from; write the output outside it (it could replace or be read "
        "as one of them)."]
    assert sorted(p.name for p in images.iterdir()) == ["a_leftImg8bit.png"]
    assert not (tmp_path / "work").exists()
