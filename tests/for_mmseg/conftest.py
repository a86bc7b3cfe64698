"""Shared fixtures: generated data and short real-Runner runs of the synthetic configs."""
from __future__ import annotations

import copy

import json
import warnings
from pathlib import Path

import pytest

pytest.importorskip("mmseg.models", reason="MMSegmentation (with mmcv ops) is not installed; "
                    "pip install 'hybridkt_ext[mmseg]' to run tests/for_mmseg")

from tests.conftest import REPO  # noqa: E402
CONFIGS = REPO / "configs" / "mmseg"
TEACHER_CONFIG = CONFIGS / "deeplabv3_r18w16-d8_1xb4-400_synthetic-gta5-64x128.py"
SYNTHETIC_STUDENT_CONFIGS = sorted(
    p for p in CONFIGS.glob("*synthetic-cityscapes*.py"))
HYBRID_CONFIG = (CONFIGS /
                 "deeplabv3_r18w8-d8_hybrid-r18w16-d8_1xb4-400_synthetic-cityscapes-64x128.py")
SMALL_DATA = dict(num_train=8, num_val=4)


def data_options(root: Path, gta5: bool = False) -> dict:
    """cfg-options pointing every dataloader at ``root`` with a small generated dataset."""
    opts = {}
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        opts[f"{loader}.dataset.data_root"] = str(root)
        opts[f"{loader}.dataset.synthetic.num_train"] = SMALL_DATA["num_train"]
        opts[f"{loader}.dataset.synthetic.num_val"] = SMALL_DATA["num_val"]
    return opts


def run_config(config, work_dir: Path, data_root: Path, iters: int = 2,
               extra: dict | None = None, train: bool = True):
    """Builds the real mmengine Runner for ``config`` (short schedule) and trains it.

    ``config`` is a config file, or an already parsed ``Config`` (copied, not changed): a
    parse costs about 2 s, which modules running many short runs pay once.
    """
    import hybridkt_ext.for_mmseg  # noqa: F401
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(str(config))
    options = data_options(data_root)
    options.update({"train_cfg.max_iters": iters, "train_cfg.val_interval": iters,
                    "default_hooks.logger.interval": 1,
                    "default_hooks.checkpoint.interval": iters,
                    "train_dataloader.batch_size": 2, "val_dataloader.batch_size": 2,
                    # Visualizers are named singletons: a fresh name per run, or every run in
                    # this process would write into the first run's vis_data/.
                    "visualizer.name": f"vis_{work_dir.name}_{id(work_dir)}"})
    options.update(extra or {})
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = Runner.from_cfg(cfg)
    if train:
        runner.train()
    return runner


def read_scalars(work_dir: Path) -> list[dict]:
    files = sorted(work_dir.glob("*/vis_data/scalars.json"))
    assert files, f"no vis_data/scalars.json under {work_dir}"
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def data_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synthetic_data")
    return {"cityscapes": root / "cityscapes", "gta5": root / "gta5"}


@pytest.fixture(scope="session")
def teacher_checkpoint(tmp_path_factory, data_dirs) -> Path:
    """A teacher checkpoint from 2 iterations of the synthetic GTA5 teacher config."""
    work = tmp_path_factory.mktemp("teacher_run")
    run_config(TEACHER_CONFIG, work, data_dirs["gta5"])
    ckpt = work / "iter_2.pth"
    assert ckpt.exists()
    return ckpt


def teacher_options(checkpoint: Path) -> dict:
    return {"model.backbone.teacher.checkpoint": str(checkpoint),
            "model.backbone.teacher.allow_random_init": False}
