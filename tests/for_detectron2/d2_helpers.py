"""Shared helpers of the detectron2 tests (skips the module when detectron2 is absent)."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("detectron2", reason="detectron2 is not installed (source-only; see README)")

from hybridkt_ext.for_detectron2.config import load_hybridkt_config  # noqa: E402

from tests.conftest import REPO  # noqa: E402
CONFIGS = REPO / "configs" / "detectron2"
HYBRID_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if not p.name.startswith("Base-"))
SYNTHETIC_CONFIGS = [p for p in HYBRID_CONFIGS if "synthetic" in p.name]
# Smaller than the synthetic configs already are: the tests only need the machinery to run
# (the mini synthetic set, 8 + 4 images, and small inputs).
TINY = ["INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MAX_SIZE_TRAIN", "256",
        "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "256", "MODEL.DEVICE", "cpu",
        "INPUT.CROP.ENABLED", "False",
        "DATASETS.TRAIN", "('citypersons_synthetic_mini_train',)",
        "DATASETS.TEST", "('citypersons_synthetic_mini_val',)"]


def load_cfg(path: Path, opts: list[str] = ()):
    """The config as tools/train_net.py reads it (not frozen)."""
    return load_hybridkt_config(str(path), opts)


def train_net_module():
    """The train_net tool's module (tools/train_net.py wraps it; its Trainer is what users
    run)."""
    return importlib.import_module("hybridkt_ext.cli.train_net")
