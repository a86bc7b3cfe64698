"""Interrupting a hybrid run and resuming it with ``tools/train_seg.py --resume``.

Three real runs of the synthetic hybrid config with a teacher file: 6 iterations straight; 6
iterations that a hook kills with an exception right after the iteration-3 checkpoint; and
``--resume`` of the killed run. The config is the ordinary one (trainable BN, RandomFlip,
InfiniteSampler shuffled with the seed) except dropout, which is off: mmengine re-seeds rather
than restores torch's generator on resume, so dropout masks after resume differ from the
uninterrupted run's (measured: iteration 4's loss 10.91 vs 10.95). Everything else is
restored or replayed: the model and optimiser from the checkpoint, the schedule from its
param_schedulers, and the data order by IterBasedTrainLoop, which advances the seeded
InfiniteSampler (and with it the flips drawn by the pipeline) past the trained iterations.

The teacher is not in checkpoints (HybridKTHook): it is rebuilt from its file, and resuming
with another teacher fails with TeacherMismatchError; a missing file fails at build.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

pytest.importorskip("mmseg.models", reason="MMSegmentation (with mmcv ops) is not installed")

from tests.conftest import REPO  # noqa: E402
TRAIN_SEG = REPO / "tools" / "train_seg.py"
HYBRID_CONFIG = REPO / "configs" / "mmseg" / (
    "deeplabv3_r18w8-d8_hybrid-r18w16-d8_1xb4-400_synthetic-cityscapes-64x128.py")
ITERS, INTERRUPTED_AT = 6, 3
SYNTHETIC = dict(style="cityscapes", num_train=8, num_val=4, size=(64, 128), seed=0)
COMPARED = ("loss", "hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3", "lr", "decode.acc_seg")
TEACHER_PREFIX = "backbone.engine.teacher."

INTERRUPT_MODULE = "interrupt_after_iter"
INTERRUPT_SOURCE = textwrap.dedent('''
    """Kills training with an exception after a given iteration (and its checkpoint)."""
    from mmengine.hooks import Hook
    from mmseg.registry import HOOKS


    @HOOKS.register_module(force=True)
    class InterruptAfterIter(Hook):
        priority = 'LOWEST'  # after CheckpointHook (VERY_LOW) has saved this iteration

        def __init__(self, iteration):
            self.iteration = iteration

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter + 1 == self.iteration:
                raise RuntimeError(f'simulated interruption after iteration {self.iteration}')
''')


def _save_teacher(path: Path, perturb: bool = False) -> None:
    """A teacher file for the config's teacher_backbone (seeded init; mmengine layout)."""
    import torch
    from mmengine.config import Config
    from mmseg.registry import MODELS

    spec = dict(Config.fromfile(str(HYBRID_CONFIG)).teacher_backbone)
    for key in ("checkpoint", "allow_random_init", "prefix"):
        spec.pop(key)
    with torch.random.fork_rng():  # leaves the test session's generator alone
        torch.manual_seed(0)
        state = MODELS.build(spec).state_dict()
    if perturb:
        state["layer4.1.conv2.weight"] = state["layer4.1.conv2.weight"] * 1.01
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in state.items()}}, path)


def _write_configs(tmp: Path, data_root: Path, teacher: Path) -> tuple[Path, Path]:
    data = dict(data_root=str(data_root), synthetic=dict(num_train=SYNTHETIC["num_train"],
                                                         num_val=SYNTHETIC["num_val"]))
    config = tmp / "resume_cfg.py"
    config.write_text(textwrap.dedent(f"""
        _base_ = {str(HYBRID_CONFIG)!r}
        model = dict(
            backbone=dict(teacher=dict(checkpoint={str(teacher)!r}, allow_random_init=False)),
            decode_head=dict(dropout_ratio=0.0), auxiliary_head=dict(dropout_ratio=0.0))
        train_dataloader = dict(batch_size=2, dataset={data!r})
        val_dataloader = dict(dataset={data!r})
        test_dataloader = dict(dataset={data!r})
        train_cfg = dict(max_iters={ITERS}, val_interval=1000)
        default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval={INTERRUPTED_AT}))
        # scalars.json rows: each iteration's own values, not a 10-iteration running mean.
        log_processor = dict(window_size=1)
    """))
    interrupted = tmp / "interrupted_cfg.py"
    interrupted.write_text(textwrap.dedent(f"""
        _base_ = {str(config)!r}
        custom_imports = dict(imports=['hybridkt_ext.for_mmseg', {INTERRUPT_MODULE!r}],
                              allow_failed_imports=False)
        custom_hooks = [dict(type='HybridKTHook'),
                        dict(type='InterruptAfterIter', iteration={INTERRUPTED_AT})]
    """))
    return config, interrupted


def _train(args: list[str], modules: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(modules), str(REPO)]),
               OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, str(TRAIN_SEG), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=400)


def _scalars(run_dir: Path) -> dict[int, dict]:
    """scalars.json training rows by iteration (of the newest run in a work dir)."""
    path = sorted(run_dir.glob("*/vis_data/scalars.json"))[-1]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["step"]: r for r in rows if "loss" in r}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    from hybridkt_ext.datasets.synthetic_segmentation import generate_synthetic_segmentation

    tmp = tmp_path_factory.mktemp("mmseg_resume")
    modules = tmp / "modules"
    modules.mkdir()
    (modules / f"{INTERRUPT_MODULE}.py").write_text(INTERRUPT_SOURCE)
    data_root = generate_synthetic_segmentation(tmp / "data", layout="cityscapes", **SYNTHETIC)
    teacher = tmp / "teacher.pth"
    _save_teacher(teacher)
    config, interrupted_config = _write_configs(tmp, data_root, teacher)
    straight, resumed = tmp / "straight", tmp / "resumed"
    done = _train([str(config), "--work-dir", str(straight)], modules)
    assert done.returncode == 0, done.stderr[-4000:]
    killed = _train([str(interrupted_config), "--work-dir", str(resumed)], modules)
    after_kill = sorted(p.name for p in resumed.glob("iter_*.pth"))
    done = _train([str(config), "--work-dir", str(resumed), "--resume"], modules)
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(tmp=tmp, config=config, teacher=teacher, straight=straight, resumed=resumed,
                killed=killed, after_kill=after_kill, resume_log=done.stdout + done.stderr)


def test_interrupted_run_died_after_its_checkpoint(runs):
    assert runs["killed"].returncode != 0
    assert f"simulated interruption after iteration {INTERRUPTED_AT}" in runs["killed"].stderr
    assert runs["after_kill"] == [f"iter_{INTERRUPTED_AT}.pth"]


def test_resume_continues_with_the_same_losses_alpha_and_schedule(runs):
    straight = _scalars(runs["straight"])
    resumed = _scalars(runs["resumed"])  # the --resume run's own scalars.json
    assert f"resumed epoch: 0, iter: {INTERRUPTED_AT}" in runs["resume_log"]
    assert sorted(resumed) == list(range(INTERRUPTED_AT + 1, ITERS + 1)), "did not continue at N"
    worst = 0.0
    for step, row in resumed.items():
        for key in COMPARED:
            expected = straight[step][key]
            assert row[key] == pytest.approx(expected, rel=1e-6, abs=1e-9), (step, key)
            worst = max(worst, abs(row[key] - expected))
    print(f"max |resumed - uninterrupted| over iterations {INTERRUPTED_AT + 1}-{ITERS}: {worst}")


def test_checkpoint_holds_a_teacher_fingerprint_not_the_teacher(runs):
    import torch

    from hybridkt_ext.core import teacher_fingerprint

    # Weights-only, as mmengine itself loads it: the adapter allowlists mmengine's classes.
    saved = torch.load(runs["resumed"] / f"iter_{INTERRUPTED_AT}.pth", map_location="cpu")
    state = saved["state_dict"]
    assert not [k for k in state if k.startswith(TEACHER_PREFIX)]
    assert any(k.startswith("backbone.engine.student.model.") for k in state)
    assert any(k.startswith("backbone.engine.to_teacher.") for k in state)  # adapters stay
    record = saved["meta"]["hybridkt"]
    assert record["teacher_checkpoint"] == str(runs["teacher"])
    teacher_file = torch.load(runs["teacher"], map_location="cpu", weights_only=True)["state_dict"]
    as_built = {f"model.{k[len('backbone.'):]}": v for k, v in teacher_file.items()}
    assert record["teacher_sha256"] == teacher_fingerprint(as_built)


def _runner(runs, work_dir: Path, teacher: Path, resume: bool, load_from: Path | None = None):
    import hybridkt_ext.for_mmseg  # noqa: F401
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(runs["config"]))
    cfg.merge_from_dict({"model.backbone.teacher.checkpoint": str(teacher),
                         "visualizer.name": f"vis_{work_dir.name}_{id(work_dir)}"})
    cfg.work_dir, cfg.resume = str(work_dir), resume
    cfg.load_from = None if load_from is None else str(load_from)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Runner.from_cfg(cfg)


def test_resume_with_another_teacher_fails_clearly(runs, tmp_path):
    import torch

    from hybridkt_ext.core import TeacherMismatchError

    work = tmp_path / "work"
    work.mkdir()
    fingerprinted = work / f"iter_{INTERRUPTED_AT}.pth"
    shutil.copy(runs["resumed"] / fingerprinted.name, fingerprinted)
    (work / "last_checkpoint").write_text(str(fingerprinted))
    # As written without HybridKTHook: the teacher's tensors inside, no fingerprint.
    saved = torch.load(fingerprinted, map_location="cpu")  # weights-only: mmengine's allowlist
    del saved["meta"]["hybridkt"]
    teacher_file = torch.load(runs["teacher"], map_location="cpu", weights_only=True)["state_dict"]
    saved["state_dict"].update({f"{TEACHER_PREFIX}model.{k[len('backbone.'):]}": v
                                for k, v in teacher_file.items()})
    teacher_inside = tmp_path / "teacher_inside.pth"
    torch.save(saved, teacher_inside)
    changed = tmp_path / "teacher_changed.pth"
    _save_teacher(changed, perturb=True)
    runner = _runner(runs, work, changed, resume=True)
    expected = "not the teacher this checkpoint was trained with.*Restore the original teacher"
    with pytest.raises(TeacherMismatchError, match=expected):
        runner.train()  # auto-resumes from work/last_checkpoint, as --resume does
    with pytest.raises(TeacherMismatchError, match=expected):
        runner.resume(str(teacher_inside))  # what train() calls, here for the older layout


def test_resume_with_a_missing_teacher_file_fails_at_build(runs, tmp_path):
    import hybridkt_ext.for_mmseg  # noqa: F401
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from hybridkt_ext.core import TeacherCheckpointError

    cfg = Config.fromfile(str(runs["config"]))
    cfg.model.backbone.teacher.checkpoint = str(tmp_path / "gone.pth")
    # train_seg.py --resume builds the model before it reads any checkpoint.
    with pytest.raises(TeacherCheckpointError, match="gone.pth: no such file"):
        MODELS.build(cfg.model)


def test_loading_for_evaluation_with_another_teacher_warns_and_keeps_it(runs, tmp_path):
    import torch

    changed = tmp_path / "teacher_changed.pth"
    _save_teacher(changed, perturb=True)
    runner = _runner(runs, tmp_path / "eval", changed, resume=False,
                     load_from=runs["resumed"] / f"iter_{ITERS}.pth")
    runner.load_or_resume()  # what Runner.test() does first (tools/test_seg.py uses load_from)
    log = next((tmp_path / "eval").glob("*/*.log")).read_text()
    assert "not the teacher this checkpoint was trained with" in log
    teacher = runner.model.backbone.teacher.state_dict()["model.layer4.1.conv2.weight"]
    expected = torch.load(changed, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(teacher, expected["backbone.layer4.1.conv2.weight"])
