"""Student export round trip (plain detectron2, no hybridkt) and the MR^-2 evaluator."""
import itertools
import math
import subprocess
import sys

import pytest
import torch

from tests.for_detectron2.d2_helpers import CONFIGS, load_cfg
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402

from hybridkt_ext.for_detectron2 import CityPersonsEvaluator, export_student_checkpoint  # noqa

PLAIN = """
import sys, torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.checkpoint import DetectionCheckpointer
cfg = get_cfg(); cfg.merge_from_file(sys.argv[1]); cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
model = build_model(cfg).eval()
incompatible = DetectionCheckpointer(model)._load_model(torch.load(sys.argv[2]))
assert not incompatible.missing_keys and not incompatible.unexpected_keys, incompatible
inputs = torch.load(sys.argv[3])
with torch.no_grad():
    out = model(inputs)[0]["instances"]
torch.save({"boxes": out.pred_boxes.tensor, "scores": out.scores}, sys.argv[4])
assert not any(m.startswith("hybridkt_ext") for m in sys.modules)
"""


def test_export_round_trip_gives_identical_detections(tmp_path):
    cfg = load_cfg(CONFIGS / "hybridkt-r18-fpn-synthetic.yaml",
                   ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"])
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # non-trivial BN statistics and head biases, as after training
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    model.eval()
    inputs = [{"image": torch.randint(0, 255, (3, 128, 256), dtype=torch.float32),
               "height": 128, "width": 256}]
    with torch.no_grad():
        ours = model(inputs)[0]["instances"]
    assert len(ours) > 0
    ckpt = export_student_checkpoint(model, tmp_path / "student.pth")
    torch.save(inputs, tmp_path / "inputs.pth")
    result = subprocess.run(
        [sys.executable, "-c", PLAIN, str(CONFIGS / "plain/faster-rcnn-r18-fpn-synthetic.yaml"),
         str(ckpt), str(tmp_path / "inputs.pth"), str(tmp_path / "out.pth")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    plain = torch.load(tmp_path / "out.pth")
    assert torch.equal(plain["boxes"], ours.pred_boxes.tensor)
    assert torch.equal(plain["scores"], ours.scores)


_NAMES = itertools.count()


def _evaluate(tmp_path, annotations, boxes, scores):
    """One 100x200 image; detections as (x1, y1, x2, y2) with scores."""
    name = f"cp_hand_{next(_NAMES)}"
    gt = [{"file_name": "x.png", "image_id": 1, "height": 100, "width": 200,
           "annotations": annotations}]
    from detectron2.data import DatasetCatalog
    DatasetCatalog.register(name, lambda: gt)
    evaluator = CityPersonsEvaluator(name, distributed=False)
    evaluator.reset()
    inst = Instances((100, 200), pred_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)
                                                 .reshape(-1, 4)),
                     scores=torch.tensor(scores), pred_classes=torch.zeros(len(scores),
                                                                            dtype=torch.long))
    evaluator.process([{"image_id": 1}], [{"instances": inst}])
    return evaluator.evaluate()["citypersons"]


def _ann(x, y, w, h, vis=1.0, ignore=0):
    return {"bbox": [x, y, w, h], "height": h, "vis_ratio": vis, "ignore": ignore}


def test_evaluator_hand_computed(tmp_path):
    person = _ann(10, 10, 30, 60)  # height 60: Reasonable and Reasonable_small
    crowd = _ann(100, 10, 80, 80, ignore=1)
    # A perfect hit and a false alarm inside the ignore region (absorbed): no miss, no FP.
    res = _evaluate(tmp_path, [person, crowd], [[10, 10, 40, 70], [110, 20, 150, 80]], [0.9, 0.8])
    assert res["MR2_Reasonable"] == pytest.approx(1e-8)  # 1e-10 floor, in percent
    assert res["MR2_Reasonable_small"] == pytest.approx(1e-8)
    assert math.isnan(res["MR2_Reasonable_occ=heavy"])  # no heavily occluded person
    # The same false alarm outside the ignore region at a higher score: at FPPI 1 the recall is
    # 1 but below FPPI 1 nothing is found, so 8 of 9 reference points miss: exp(8/9 * log 1).
    res = _evaluate(tmp_path, [person], [[10, 10, 40, 70], [110, 20, 150, 80]], [0.5, 0.8])
    assert res["MR2_Reasonable"] == pytest.approx(100 * math.exp(math.log(1e-10) / 9))
    # Visibility filter: a heavily occluded person counts for occ=heavy only.
    occluded = _ann(10, 10, 30, 60, vis=0.4)
    res = _evaluate(tmp_path, [occluded], [], [])
    assert math.isnan(res["MR2_Reasonable"]) and res["MR2_Reasonable_occ=heavy"] == 100.0
