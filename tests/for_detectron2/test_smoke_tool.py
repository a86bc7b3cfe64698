"""tools/smoke.py on a stock detectron2 YAML config: DefaultTrainer plain, HybridKTTrainer hybrid."""
from __future__ import annotations

import tests.for_detectron2.d2_helpers  # noqa: F401  (skips the module without detectron2)
from tests.smoke_tool_runs import check_passed, run_smoke


def test_a_model_zoo_config_converts_trains_and_exports(tmp_path):
    done = run_smoke(tmp_path, "COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x.yaml", "--teacher",
                     "torchvision.resnet18", "--iters", "2", "--size", "64", "64")
    out = check_passed(done, 2)
    assert "citypersons_synthetic_mini_dense_train" in out


def test_a_config_with_a_builder_that_has_no_hybrid_twin_is_refused(tmp_path):
    done = run_smoke(tmp_path, "COCO-Detection/fast_rcnn_R_50_FPN_1x.yaml", "--teacher",
                     "torchvision.resnet18")
    assert done.returncode == 1
    assert "hybridkt-smoke:" in done.stderr.strip().splitlines()[-1]
