"""No mmseg tool runs code from a checkpoint: teacher file, --resume, testing, export.

Every hostile file here pickles a call that would create a marker file. Each tool must stop
with one line naming the class and ``--trust-checkpoint``, and the marker must never appear.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import torch

from .conftest import HYBRID_CONFIG, REPO, data_options, run_config, teacher_options


class _CreatesFile:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def _with_payload(source, target, marker) -> None:
    """A copy of a real checkpoint with the payload added under ``meta``."""
    saved = torch.load(source, map_location="cpu")  # weights-only: our allowlist reads it
    saved.setdefault("meta", {})["note"] = _CreatesFile(str(marker))
    torch.save(saved, target)


def _assert_refused(done: subprocess.CompletedProcess, tool: str, marker) -> None:
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{tool}: UntrustedCheckpointError:"), done.stderr[-2000:]
    assert "posix.system" in last and "--trust-checkpoint" in last
    assert "Traceback" not in done.stderr
    assert not marker.exists()


def _options(data_dirs) -> list[str]:
    return [f"{k}={v}" for k, v in data_options(data_dirs["cityscapes"]).items()]


def test_a_hostile_teacher_file_is_refused_by_train_seg(tmp_path, data_dirs, teacher_checkpoint):
    marker = tmp_path / "code_ran"
    hostile = tmp_path / "teacher.pth"
    _with_payload(teacher_checkpoint, hostile, marker)
    done = _run([str(REPO / "tools" / "train_seg.py"), str(HYBRID_CONFIG),
                 "--work-dir", str(tmp_path / "work"), "--cfg-options",
                 "train_cfg.max_iters=2", *_options(data_dirs),
                 *[f"{k}={v}" for k, v in teacher_options(hostile).items()]])
    _assert_refused(done, "train_seg", marker)


def test_a_hostile_checkpoint_is_refused_on_resume(tmp_path, data_dirs, teacher_checkpoint):
    work = tmp_path / "work"
    run_config(HYBRID_CONFIG, work, data_dirs["cityscapes"], extra=teacher_options(
        teacher_checkpoint))
    marker = tmp_path / "code_ran"
    _with_payload(work / "iter_2.pth", work / "iter_2.pth", marker)
    assert (work / "last_checkpoint").read_text().strip().endswith("iter_2.pth")
    done = _run([str(REPO / "tools" / "train_seg.py"), str(HYBRID_CONFIG),
                 "--work-dir", str(work), "--resume", "--cfg-options", "train_cfg.max_iters=4",
                 *_options(data_dirs),
                 *[f"{k}={v}" for k, v in teacher_options(teacher_checkpoint).items()]])
    _assert_refused(done, "train_seg", marker)


def test_test_seg_and_export_refuse_a_hostile_checkpoint_unless_trusted(tmp_path, data_dirs,
                                                                        teacher_checkpoint):
    work = tmp_path / "work"
    run_config(HYBRID_CONFIG, work, data_dirs["cityscapes"], extra=teacher_options(
        teacher_checkpoint))
    marker = tmp_path / "code_ran"
    hostile = tmp_path / "hostile.pth"
    _with_payload(work / "iter_2.pth", hostile, marker)
    teacher = [f"{k}={v}" for k, v in teacher_options(teacher_checkpoint).items()]
    test_seg = [str(REPO / "tools" / "test_seg.py"), str(HYBRID_CONFIG), str(hostile),
                "--work-dir", str(tmp_path / "test"), "--cfg-options", *_options(data_dirs),
                *teacher]
    _assert_refused(_run(test_seg), "test_seg", marker)
    export = [str(REPO / "tools" / "export_seg_student.py"), str(HYBRID_CONFIG), str(hostile),
              str(tmp_path / "student.pth")]
    _assert_refused(_run(export), "export_seg_student", marker)
    assert not (tmp_path / "student.pth").exists()
    # The payload is live: the explicit opt-in runs it.
    done = _run([*export, "--trust-checkpoint"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert marker.exists()


def test_mmengine_checkpoints_resume_without_switching_torch_protection_off(tmp_path, data_dirs,
                                                                           teacher_checkpoint):
    work = tmp_path / "work"
    run_config(HYBRID_CONFIG, work, data_dirs["cityscapes"], extra=teacher_options(
        teacher_checkpoint))
    shutil.copy(work / "iter_2.pth", tmp_path / "kept.pth")
    env_before = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    done = _run([str(REPO / "tools" / "train_seg.py"), str(HYBRID_CONFIG),
                 "--work-dir", str(work), "--resume", "--cfg-options", "train_cfg.max_iters=3",
                 *_options(data_dirs),
                 *[f"{k}={v}" for k, v in teacher_options(teacher_checkpoint).items()]])
    assert env_before is None
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / "iter_3.pth").exists()
    assert "resumed epoch: 0, iter: 2" in done.stdout + done.stderr
