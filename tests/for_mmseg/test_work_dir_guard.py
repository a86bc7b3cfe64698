"""Nothing of a run is lost: one run per work dir, no silent overwrite or fresh start, atomic
checkpoint writes, and a resume that passes over a damaged last checkpoint."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import HYBRID_CONFIG, REPO, data_options, run_config, teacher_options

from hybridkt_ext.for_openmmlab.atomic_files import AtomicLocalBackend  # noqa: E402
from hybridkt_ext.for_openmmlab.work_dir_guard import LOCK_NAME  # noqa: E402


def _train(data_dirs, teacher, work, *extra: str, max_iters: int = 2
           ) -> subprocess.CompletedProcess:
    options = [f"{k}={v}" for k, v in data_options(data_dirs["cityscapes"]).items()]
    options += [f"{k}={v}" for k, v in teacher_options(teacher).items()]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, str(REPO / "tools" / "train_seg.py"),
                           str(HYBRID_CONFIG), "--work-dir", str(work), *extra, "--cfg-options",
                           f"train_cfg.max_iters={max_iters}",
                           "default_hooks.checkpoint.interval=1", *options], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


def _last_line(done: subprocess.CompletedProcess) -> str:
    return done.stderr.strip().splitlines()[-1]


@pytest.fixture()
def finished_run(tmp_path, data_dirs, teacher_checkpoint):
    work = tmp_path / "work"
    done = _train(data_dirs, teacher_checkpoint, work)
    assert done.returncode == 0, done.stderr[-2000:]
    return work


def test_a_second_run_into_a_finished_one_is_refused_unless_asked(finished_run, data_dirs,
                                                                  teacher_checkpoint):
    before = {p.name: p.read_bytes() for p in finished_run.glob("*.pth")}
    done = _train(data_dirs, teacher_checkpoint, finished_run)
    assert done.returncode == 1
    assert _last_line(done) == (
        f"train_seg: WorkDirError: {finished_run} holds a previous run (iter_2.pth); pass "
        "--resume to continue it, --overwrite to replace it, or another --work-dir.")
    assert {p.name: p.read_bytes() for p in finished_run.glob("*.pth")} == before
    assert _train(data_dirs, teacher_checkpoint, finished_run, "--overwrite").returncode == 0


def test_resume_with_nothing_to_resume_stops(tmp_path, data_dirs, teacher_checkpoint):
    done = _train(data_dirs, teacher_checkpoint, tmp_path / "typo", "--resume")
    assert done.returncode == 1 and "holds no checkpoint to resume" in _last_line(done)
    assert not (tmp_path / "typo").exists()


def test_a_work_dir_in_use_by_a_live_run_is_refused(tmp_path, data_dirs, teacher_checkpoint):
    work = tmp_path / "busy"
    work.mkdir()
    (work / LOCK_NAME).write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename,
                                              "started": "now"}))
    done = _train(data_dirs, teacher_checkpoint, work)
    assert done.returncode == 1
    assert f"in use by another run (process {os.getpid()}" in _last_line(done)
    # A lock whose process is gone (a crashed run) is taken over.
    (work / LOCK_NAME).write_text(json.dumps({"pid": 2 ** 22 + 12345,
                                              "host": os.uname().nodename, "started": "then"}))
    done = _train(data_dirs, teacher_checkpoint, work)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (work / LOCK_NAME).exists()  # released at the end


def test_resume_passes_over_a_truncated_last_checkpoint(finished_run, data_dirs,
                                                        teacher_checkpoint):
    data = (finished_run / "iter_2.pth").read_bytes()
    (finished_run / "iter_2.pth").write_bytes(data[: len(data) // 2])  # a save cut short
    done = _train(data_dirs, teacher_checkpoint, finished_run, "--resume", max_iters=3)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"--resume skips {finished_run / 'iter_2.pth'}: the file is damaged" in done.stderr
    assert "resumed epoch: 0, iter: 1" in done.stdout + done.stderr
    assert (finished_run / "iter_3.pth").exists()


def test_a_work_dir_that_is_a_file_is_refused(tmp_path, data_dirs, teacher_checkpoint):
    (tmp_path / "file").write_text("not a folder")
    done = _train(data_dirs, teacher_checkpoint, tmp_path / "file")
    assert done.returncode == 1 and "is a file, not a folder" in _last_line(done)


def test_a_failed_checkpoint_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "iter_1.pth"
    AtomicLocalBackend().put(b"the previous checkpoint", path)

    real_fsync = os.fsync

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        AtomicLocalBackend().put(b"half of the new one", path)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert path.read_bytes() == b"the previous checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_1.pth"]  # no temporary left


def test_the_runner_writes_its_checkpoints_through_the_atomic_backend(tmp_path, data_dirs,
                                                                      teacher_checkpoint,
                                                                      monkeypatch):
    written = []
    real_put = AtomicLocalBackend.put

    def recording_put(self, obj, filepath):
        written.append(os.fspath(filepath))
        return real_put(self, obj, filepath)

    monkeypatch.setattr(AtomicLocalBackend, "put", recording_put)
    run_config(HYBRID_CONFIG, tmp_path / "run", data_dirs["cityscapes"],
               extra=teacher_options(teacher_checkpoint))
    assert str(tmp_path / "run" / "iter_2.pth") in written
    shutil.rmtree(tmp_path / "run")
