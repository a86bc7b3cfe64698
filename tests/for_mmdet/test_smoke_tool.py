"""tools/smoke.py on a stock mmdet config with a mask head (the masks of the generated COCO)."""
from __future__ import annotations

from tests.smoke_tool_runs import check_passed, run_smoke


def test_mask_rcnn_converts_trains_on_generated_masks_and_exports(tmp_path):
    done = run_smoke(tmp_path, "mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py", "--teacher",
                     "torchvision.resnet18", "--iters", "2", "--size", "64", "64")
    out = check_passed(done, 2)
    assert "CityPersons as COCO (masks where the config loads them)" in out
