"""tools/train_det.py with two gloo processes (the same alpha on every rank) and --resume."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import REPO, read_scalars
from .test_tools import SYNTHETIC_HYBRID, _data_options

RECORDER = textwrap.dedent('''
    """Writes each rank's loss dict of every iteration to rank<k>.jsonl."""
    import json
    import os

    from mmengine.hooks import Hook
    from mmdet.registry import HOOKS


    @HOOKS.register_module(force=True)
    class PerRankLossRecorder(Hook):
        priority = 'LOWEST'

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            row = dict(iter=runner.iter + 1, world_size=runner.world_size,
                       wrapper=type(runner.model).__name__,
                       **{k: float(v) for k, v in outputs.items()})
            with open(os.path.join(runner.work_dir, f'rank{runner.rank}.jsonl'), 'a') as f:
                f.write(json.dumps(row) + '\\n')
''')


def _run(args: list[str], pythonpath: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (pythonpath, str(REPO)) if p))
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_two_gloo_processes_train_with_the_same_alpha_on_every_rank(tmp_path, citypersons_root):
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "per_rank_loss_recorder.py").write_text(RECORDER)
    config = tmp_path / "distributed.py"
    config.write_text(textwrap.dedent(f"""
        _base_ = {str(SYNTHETIC_HYBRID)!r}
        custom_imports = dict(imports=['hybridkt_ext.for_mmdet', 'per_rank_loss_recorder'],
                              allow_failed_imports=False)
        custom_hooks = [dict(type='HybridKTHook'), dict(type='PerRankLossRecorder')]
        env_cfg = dict(dist_cfg=dict(backend='gloo'))
    """))
    work = tmp_path / "work"
    done = _run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                 str(REPO / "tools" / "train_det.py"), str(config), "--launcher", "pytorch",
                 "--work-dir", str(work), "--cfg-options", "train_cfg.max_iters=3",
                 "train_cfg.val_interval=1000", "train_dataloader.batch_size=1",
                 *_data_options(citypersons_root)], pythonpath=str(modules))
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [[json.loads(line) for line in (work / f"rank{r}.jsonl").read_text().splitlines()]
             for r in (0, 1)]
    for rows in ranks:
        assert [r["iter"] for r in rows] == [1, 2, 3]
        assert {(r["world_size"], r["wrapper"]) for r in rows} == {
            (2, "MMDistributedDataParallel")}
    for a, b in zip(*ranks):
        assert a["hkt_alpha"] == b["hkt_alpha"]  # bit-identical: from rank-averaged losses
        mean = {k: (a[k] + b[k]) / 2 for k in ("hkt_L1", "hkt_L2", "hkt_L3")}
        assert a["hkt_alpha"] == pytest.approx(
            2 * mean["hkt_L3"] / (mean["hkt_L1"] + mean["hkt_L2"]), rel=1e-5)
    assert ranks[0][0]["hkt_L3"] != ranks[1][0]["hkt_L3"]  # the ranks saw different images


def test_resume_continues_the_run_and_nothing_to_resume_stops(tmp_path, citypersons_root,
                                                              teacher_checkpoint):
    train = [str(REPO / "tools" / "train_det.py"), str(SYNTHETIC_HYBRID)]
    options = ["default_hooks.checkpoint.interval=2", "train_cfg.val_interval=1000",
               "default_hooks.logger.interval=1", "log_processor.window_size=1",
               f"model.backbone.teacher.checkpoint={teacher_checkpoint}",
               "model.backbone.teacher.allow_random_init=False",
               *_data_options(citypersons_root)]
    work = tmp_path / "work"
    first = _run([*train, "--work-dir", str(work), "--cfg-options", "train_cfg.max_iters=2",
                  *options])
    assert first.returncode == 0, first.stderr[-3000:]
    second = _run([*train, "--work-dir", str(work), "--resume", "--cfg-options",
                   "train_cfg.max_iters=4", *options])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed" in second.stdout + second.stderr
    rows = [r for r in read_scalars(work) if "hkt_alpha" in r]
    assert [r["iter"] for r in rows] == [3, 4]  # the resumed run's own log
    assert (work / "iter_4.pth").is_file()
    empty = _run([*train, "--work-dir", str(tmp_path / "empty"), "--resume", "--cfg-options",
                  *options])
    assert empty.returncode == 1
    assert empty.stderr.strip().splitlines()[-1].startswith(
        "train_det: WorkDirError: --resume: ")
    assert not list(Path(tmp_path / "empty").glob("*.pth"))


def test_a_run_with_a_random_teacher_cannot_be_resumed_and_says_why(tmp_path, citypersons_root):
    train = [str(REPO / "tools" / "train_det.py"), str(SYNTHETIC_HYBRID), "--work-dir",
             str(tmp_path / "work")]
    options = ["default_hooks.checkpoint.interval=1", "train_cfg.val_interval=1000",
               *_data_options(citypersons_root)]
    first = _run([*train, "--cfg-options", "train_cfg.max_iters=1", *options])
    assert first.returncode == 0, first.stderr[-3000:]
    again = _run([*train, "--resume", "--cfg-options", "train_cfg.max_iters=2", *options])
    assert again.returncode == 1
    last = again.stderr.strip().splitlines()[-1]
    assert last.startswith("train_det: TeacherMismatchError: HybridKTHook: this run's teacher "
                           "had no file (allow_random_init): it is drawn anew at every build"), last
