"""The detectron2 examples the README quotes: the LazyConfig conversion builds, and the plain
MobileNetV1 student loads its exported checkpoint."""
import os
import subprocess
import sys

from tests.for_detectron2.d2_helpers import CONFIGS, REPO, TINY, load_cfg, train_net_module
from detectron2.config import LazyConfig, instantiate  # noqa: E402

from hybridkt_ext.for_detectron2 import HybridBottomUp, save_student_checkpoint  # noqa: E402

EXAMPLES = REPO / "examples"


def test_the_lazyconfig_example_builds_the_hybrid_lsj_model():
    cfg = LazyConfig.apply_overrides(
        LazyConfig.load(str(EXAMPLES / "detectron2_lazyconfig.py")),
        ["model.backbone.bottom_up.teacher.weights=",
         "model.backbone.bottom_up.teacher.allow_random_init=True"])
    model = instantiate(cfg.model)
    assert isinstance(model.backbone.bottom_up, HybridBottomUp)
    assert [s.name for s in model.backbone.bottom_up.engine.teacher.stage_specs] == [
        "res2", "res3", "res4", "res5"]  # the YAML teacher's own bottom-up


def test_the_plain_student_example_loads_an_exported_mobilenet(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDKT_DATA", str(tmp_path / "data"))
    cfg = load_cfg(CONFIGS / "hybridkt-mobilenetv1-fpn-synthetic.yaml", TINY)
    model = train_net_module().Trainer.build_model(cfg)
    save_student_checkpoint(model, tmp_path / "student.pth", cfg=cfg)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, str(EXAMPLES / "detectron2_plain_student.py"),
                           str(tmp_path / "student.yaml")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "GeneralizedRCNN MobileNetV1Backbone"
