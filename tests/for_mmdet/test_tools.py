"""tools/train_det.py and tools/test_det.py on the shipped configs, as a user runs them; every
config of configs/mmdet builds its model."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import torch

from .conftest import REPO, SMALL, read_scalars

CONFIGS = sorted(p for p in (REPO / "configs" / "mmdet").rglob("*.py") if "_base_" not in p.parts)
SYNTHETIC_HYBRID = REPO / "configs" / "mmdet" / \
    "faster-rcnn_mobilenetv1_fpn_hybrid-r18_synthetic-citypersons.py"


def _data_options(root) -> list[str]:
    options = [f"val_evaluator.data_root={root}", f"test_evaluator.data_root={root}"]
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        options += [f"{loader}.dataset.data_root={root}",
                    f"{loader}.dataset.synthetic.num_train={SMALL['num_train']}",
                    f"{loader}.dataset.synthetic.num_val={SMALL['num_val']}"]
    return options


def _tool(name: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / "tools" / name), *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_builds_its_model(config):
    import hybridkt_ext.for_mmdet  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = Config.fromfile(str(config))
    backbone = cfg.model.backbone
    if backbone.type == "HybridBackbone" and backbone.get("teacher"):
        # The teacher files are the user's (CityPersons configs): build with a random one.
        # (A config with several teachers lists them: each gets a random one.)
        teachers = backbone.teacher
        for teacher in teachers if isinstance(teachers, (list, tuple)) else [teachers]:
            teacher.update(checkpoint=None, allow_random_init=True)
    if "init_cfg" in backbone:
        backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope("mmdet"):
        model = MODELS.build(cfg.model)
    with torch.no_grad():
        feats = model.eval().extract_feat(torch.zeros(1, 3, 128, 256))
    assert len(feats) == cfg.model.neck.num_outs
    assert cfg.custom_imports["imports"] == ["hybridkt_ext.for_mmdet"]


def test_train_det_and_test_det_on_the_synthetic_hybrid_config(tmp_path, citypersons_root):
    work = tmp_path / "work"
    done = _tool("train_det.py", str(SYNTHETIC_HYBRID), "--work-dir", str(work),
                 "--cfg-options", "train_cfg.max_iters=4", "train_cfg.val_interval=4",
                 "default_hooks.checkpoint.interval=4", "log_processor.window_size=1",
                 "default_hooks.logger.interval=1", *_data_options(citypersons_root))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [r for r in read_scalars(work) if "hkt_alpha" in r]
    assert [r["iter"] for r in rows] == [1, 2, 3, 4]
    assert all(r["hkt_alpha"] == pytest.approx(2 * r["hkt_L3"] / (r["hkt_L1"] + r["hkt_L2"]),
                                               rel=1e-5) for r in rows)
    assert (work / "alpha_and_path_losses.png").is_file()
    # A second run into the same work dir would lose the first: refused in one line.
    again = _tool("train_det.py", str(SYNTHETIC_HYBRID), "--work-dir", str(work),
                  "--cfg-options", "train_cfg.max_iters=4", *_data_options(citypersons_root))
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1].startswith("train_det: WorkDirError:")

    # The student alone is evaluated (no teacher file needed), and --out dumps detections.
    out = tmp_path / "detections.pkl"
    tested = _tool("test_det.py", str(SYNTHETIC_HYBRID), str(work / "iter_4.pth"),
                   "--work-dir", str(tmp_path / "test"), "--out", str(out),
                   "--cfg-options", *_data_options(citypersons_root))
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert "citypersons/MR2_Reasonable" in tested.stdout
    import pickle

    with open(out, "rb") as f:
        dumped = pickle.load(f)
    assert len(dumped) == SMALL["num_val"] and "pred_instances" in dumped[0]


def test_a_run_shorter_than_the_logging_interval_still_logs_its_alpha(tmp_path,
                                                                      citypersons_root):
    # The smoke command: the configs log every 20 iterations, the run has 4.
    work = tmp_path / "work"
    done = _tool("train_det.py", str(SYNTHETIC_HYBRID), "--work-dir", str(work),
                 "--cfg-options", "train_cfg.max_iters=4", *_data_options(citypersons_root))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [r for r in read_scalars(work) if "hkt_alpha" in r]
    assert [r["iter"] for r in rows] == [4]  # the last iteration, once
    assert {"hkt_L1", "hkt_L2", "hkt_L3", "loss"} <= set(rows[0])


def test_test_det_refuses_an_out_that_is_not_a_pickle(tmp_path, citypersons_root):
    done = _tool("test_det.py", str(SYNTHETIC_HYBRID), str(tmp_path / "none.pth"),
                 "--out", str(tmp_path / "dets.json"), "--cfg-options",
                 *_data_options(citypersons_root))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"test_det: ValueError: --out {tmp_path / 'dets.json'}: the detections are dumped with "
        "pickle; give a .pkl file.")


class _CreatesFile:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_train_det_runs_no_code_from_a_hostile_teacher_file(tmp_path, citypersons_root,
                                                            teacher_checkpoint):
    marker = tmp_path / "code_ran"
    hostile = tmp_path / "hostile_teacher.pth"
    saved = torch.load(teacher_checkpoint, weights_only=True)
    saved["meta"]["note"] = _CreatesFile(str(marker))
    torch.save(saved, hostile)
    done = _tool("train_det.py", str(SYNTHETIC_HYBRID), "--work-dir", str(tmp_path / "work"),
                 "--cfg-options", "train_cfg.max_iters=2",
                 f"model.backbone.teacher.checkpoint={hostile}",
                 "model.backbone.teacher.allow_random_init=False",
                 *_data_options(citypersons_root))
    assert done.returncode == 1 and not marker.exists()
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("train_det: UntrustedCheckpointError:") and "posix.system" in last
    assert "--trust-checkpoint" in last and "Traceback" not in done.stderr
