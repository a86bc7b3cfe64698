"""detectron2 LazyConfig: the converted LSJ Mask R-CNN and RetinaNet configs train through
tools/train_net.py with detectron2's LazyConfig conventions (``key=value`` overrides)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.for_detectron2.d2_helpers import CONFIGS, REPO
from detectron2.config import LazyConfig, instantiate  # noqa: E402

from hybridkt_ext.for_detectron2 import HybridBottomUp, install_transfer_step  # noqa: E402
from hybridkt_ext.for_detectron2.hooks import find_teacher  # noqa: E402

LAZY = CONFIGS / "lazy"
REAL = ["mask_rcnn_R_50_FPN_100ep_LSJ_hybrid_citypersons.py",
        "retinanet_R_50_FPN_1x_hybrid_citypersons.py"]
SYNTHETIC = ["mask_rcnn_R_50_FPN_LSJ_hybrid_synthetic.py", "retinanet_R_50_FPN_hybrid_synthetic.py"]


@pytest.mark.parametrize("name", REAL)
def test_the_citypersons_configs_build_detectron2s_models_with_a_hybrid_bottom_up(name):
    cfg = LazyConfig.apply_overrides(LazyConfig.load(str(LAZY / name)),
                                     ["model.backbone.bottom_up.teacher.allow_random_init=True"])
    model = instantiate(cfg.model)
    assert type(model).__module__.startswith("detectron2.modeling")  # the stock class
    assert isinstance(model.backbone.bottom_up, HybridBottomUp)
    assert install_transfer_step(model)
    # SyncBN in the LSJ FPN is kept: the transfer step guards it (not refused).
    norms = {type(m).__name__ for m in model.backbone.modules()}
    assert "SyncBatchNorm" in norms or "retinanet" in name
    # The teacher reads RGB ImageNet input; detectron2 feeds the student BGR 0-255.
    assert model.backbone.bottom_up.engine.teacher_input.swap
    assert cfg.dataloader.train.dataset.names == "citypersons_train"


def test_a_lazy_teacher_without_weights_is_refused():
    cfg = LazyConfig.load(str(LAZY / REAL[1]))
    with pytest.raises(ValueError, match="WEIGHTS is not set"):
        instantiate(cfg.model)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_a_synthetic_lazy_config_trains_through_train_net(name, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, HYBRIDKT_DATA=str(tmp_path / "data"), PYTHONWARNINGS="ignore",
               OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file",
         str(LAZY / name), "train.max_iter=2", f"train.output_dir={out}",
         "dataloader.train.dataset.names=citypersons_synthetic_mini_train",
         "dataloader.test.dataset.names=citypersons_synthetic_mini_val",
         "dataloader.evaluator.dataset_name=citypersons_synthetic_mini_val",
         "train.log_period=1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(r) for r in (out / "metrics.json").read_text().splitlines()]
    trained = [r for r in rows if "hkt_alpha" in r]
    assert [r["iteration"] for r in trained] == [0, 1]  # two steps: CI time, same checks
    for row in trained:
        alpha = 2 * row["hkt_L3"] / (row["hkt_L1"] + row["hkt_L2"])
        assert row["hkt_alpha"] == pytest.approx(alpha, rel=1e-4)
    assert (out / "alpha_and_path_losses.png").exists()
    assert (out / "model_final.pth").exists()
    # The final model still holds the untouched random teacher it was built with.
    saved = torch.load(out / "model_final.pth", map_location="cpu")["model"]
    assert any(".engine.teacher." in k for k in saved)


def test_amp_on_a_cpu_machine_is_refused_before_building(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU refusal")
    from hybridkt_ext.for_detectron2.lazy_training import load_lazy_config

    with pytest.raises(ValueError, match="train.amp.enabled=False"):
        load_lazy_config(str(LAZY / REAL[0]), [])


def test_find_teacher_sees_the_lazy_model():
    cfg = LazyConfig.apply_overrides(LazyConfig.load(str(LAZY / SYNTHETIC[1])), [])
    assert find_teacher(instantiate(cfg.model)) is not None


def test_fcos_from_its_lazyconfig_trains_with_the_same_conversion(tmp_path, monkeypatch):
    """FCOS exists only as a LazyConfig in detectron2: the bottom-up line converts it too."""
    from types import SimpleNamespace

    import detectron2.data.transforms as T
    from detectron2 import model_zoo
    from detectron2.config import LazyCall as L

    from hybridkt_ext.for_detectron2 import lazy_training
    from hybridkt_ext.for_detectron2.lazy import hybrid_bottom_up

    monkeypatch.setenv("HYBRIDKT_DATA", str(tmp_path / "data"))
    cfg = model_zoo.get_config("COCO-Detection/fcos_R_50_FPN_1x.py")
    cfg.model.backbone.bottom_up = L(hybrid_bottom_up)(
        student=cfg.model.backbone.bottom_up,
        teacher=dict(arch="resnet18", allow_random_init=True),
        out_features="${.student.out_features}")
    student = cfg.model.backbone.bottom_up.student
    student.stem.norm = student.stages.norm = "BN"  # from scratch: no ImageNet download
    student.freeze_at = 0
    cfg.model.num_classes = 1
    cfg.dataloader.train.dataset.names = "citypersons_synthetic_mini_train"
    cfg.dataloader.train.mapper.augmentations = [
        L(T.ResizeShortestEdge)(short_edge_length=(128,), max_size=256, sample_style="choice")]
    cfg.dataloader.train.total_batch_size = 2
    cfg.dataloader.train.num_workers = 0
    cfg.dataloader.pop("evaluator")
    cfg.train.update(device="cpu", init_checkpoint="", max_iter=2, eval_period=0,
                     output_dir=str(tmp_path / "out"), log_period=1)
    cfg.optimizer.lr = 0.001
    args = SimpleNamespace(config_file="", opts=[], eval_only=False, resume=False,
                           trust_checkpoint=False, num_gpus=1)
    lazy_training.run(cfg, args)
    rows = [json.loads(r) for r in (tmp_path / "out" / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "hkt_alpha" in r] == [0, 1]


def test_train_net_reports_a_missing_teacher_file_in_one_line(tmp_path):
    env = dict(os.environ, HYBRIDKT_DATA=str(tmp_path / "data"), PYTHONWARNINGS="ignore",
               OMP_NUM_THREADS="1")
    command = [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file",
               str(REPO / "configs" / "detectron2" / "hybridkt-r18-fpn-synthetic.yaml"),
               "MODEL.HYBRIDKT.TEACHER.WEIGHTS", str(tmp_path / "gone.pth"),
               "OUTPUT_DIR", str(tmp_path / "out")]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("train_net: ") and "gone.pth" in last
    assert "Traceback" not in done.stderr
    # --debug before the KEY VALUE pairs: after them detectron2's parser reads it as one.
    debug = subprocess.run(command[:2] + ["--debug"] + command[2:], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
