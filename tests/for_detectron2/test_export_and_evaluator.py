"""Student export round trip (plain detectron2, no hybridkt) and the MR^-2 evaluator."""
import itertools
import math
import subprocess
import sys

import pytest
import torch

from tests.for_detectron2.d2_helpers import CONFIGS, load_cfg
from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402

from hybridkt_ext.for_detectron2 import CityPersonsEvaluator, save_student_checkpoint  # noqa

# Runs in a fresh interpreter: plain detectron2 builds the student from a config and the exported
# checkpoint. argv: config, checkpoint, inputs, output, prelude (code run on cfg before merging,
# may be empty). Without a prelude no hybridkt module may be imported.
PLAIN = """
import sys, torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.checkpoint import DetectionCheckpointer
config, checkpoint, inputs, output, prelude = sys.argv[1:6]
cfg = get_cfg()
if prelude:
    try:  # first without it: the failure a user sees when the import is missing
        cfg.clone().merge_from_file(config)
        raise SystemExit("merged without the prelude")
    except KeyError as err:
        print("without the prelude:", err)
    exec(prelude)
cfg.merge_from_file(config)
cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
model = build_model(cfg).eval()
incompatible = DetectionCheckpointer(model)._load_model(torch.load(checkpoint))
assert not incompatible.missing_keys and not incompatible.unexpected_keys, incompatible
with torch.no_grad():
    out = model(torch.load(inputs))[0]["instances"]
torch.save({"boxes": out.pred_boxes.tensor, "scores": out.scores}, output)
assert prelude or not any(m.startswith("hybridkt_ext") for m in sys.modules)
"""
# What the header of an exported MobileNetV1 config tells the user to run.
MOBILENET_PRELUDE = ("from hybridkt_ext.for_detectron2.mobilenet_v1_backbone import "
                     "add_mobilenet_v1_config; add_mobilenet_v1_config(cfg)")


def _trained_looking_model(config):
    cfg = load_cfg(CONFIGS / config, ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"])
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # non-trivial BN statistics, as after training
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return cfg, model.eval()


def _plain_detections(tmp_path, model, plain_config, checkpoint, prelude=""):
    """(hybrid model's detections, plain detectron2's detections, the subprocess's stdout)."""
    inputs = [{"image": torch.randint(0, 255, (3, 128, 256), dtype=torch.float32),
               "height": 128, "width": 256}]
    with torch.no_grad():
        ours = model(inputs)[0]["instances"]
    assert len(ours) > 0
    torch.save(inputs, tmp_path / "inputs.pth")
    result = subprocess.run(
        [sys.executable, "-c", PLAIN, str(plain_config), str(checkpoint),
         str(tmp_path / "inputs.pth"), str(tmp_path / "out.pth"), prelude],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return ours, torch.load(tmp_path / "out.pth"), result.stdout


def test_export_round_trip_gives_identical_detections(tmp_path):
    cfg, model = _trained_looking_model("hybridkt-r18-fpn-synthetic.yaml")
    ckpt = save_student_checkpoint(model, tmp_path / "student.pth", cfg=cfg)
    # The exported plain config is plain detectron2 (no hybridkt key) and matches the one in
    # configs/detectron2/plain, which the fresh interpreter uses.
    exported = get_cfg()
    exported.merge_from_file(str(tmp_path / "student.yaml"))
    assert exported.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
    assert exported.MODEL.BACKBONE.NAME == "build_resnet_fpn_backbone"
    assert exported.MODEL.WEIGHTS == str(ckpt.resolve())
    ours, plain, _ = _plain_detections(
        tmp_path, model, CONFIGS / "plain/faster-rcnn-r18-fpn-synthetic.yaml", ckpt)
    assert torch.equal(plain["boxes"], ours.pred_boxes.tensor)
    assert torch.equal(plain["scores"], ours.scores)


def test_mobilenet_v1_export_writes_a_plain_config_with_its_one_import(tmp_path):
    cfg, model = _trained_looking_model("hybridkt-mobilenetv1-fpn-synthetic.yaml")
    ckpt = save_student_checkpoint(model, tmp_path / "student.pth", cfg=cfg)
    text = (tmp_path / "student.yaml").read_text()
    assert "build_mobilenet_v1_fpn_backbone" in text and "HYBRIDKT" not in text
    assert "add_mobilenet_v1_config" in text.split("MODEL:")[0]  # the header says what to run
    ours, plain, stdout = _plain_detections(tmp_path, model, tmp_path / "student.yaml", ckpt,
                                            prelude=MOBILENET_PRELUDE)
    assert "MODEL.MOBILENET_V1" in stdout  # detectron2's error without the import names the key
    assert torch.equal(plain["boxes"], ours.pred_boxes.tensor)
    assert torch.equal(plain["scores"], ours.scores)
    with pytest.raises(FileExistsError, match="student.yaml"):
        save_student_checkpoint(model, tmp_path / "student.pth", cfg=cfg)


_NAMES = itertools.count()


def _evaluate(tmp_path, annotations, boxes, scores, zero_miss_rate="official", num_images=1):
    """100x200 images with these annotations; detections as (x1, y1, x2, y2) with scores, on
    image 1 only (the others are never processed)."""
    name = f"cp_hand_{next(_NAMES)}"
    gt = [{"file_name": f"{i}.png", "image_id": i, "height": 100, "width": 200,
           "annotations": annotations} for i in range(1, num_images + 1)]
    from detectron2.data import DatasetCatalog
    DatasetCatalog.register(name, lambda: gt)
    evaluator = CityPersonsEvaluator(name, distributed=False, zero_miss_rate=zero_miss_rate)
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
    assert res["MR2_Reasonable"] == 0.0  # the official script's 0.00%
    assert res["MR2_Reasonable_small"] == 0.0
    assert math.isnan(res["MR2_Reasonable_occ=heavy"])  # no heavily occluded person
    # The same false alarm outside the ignore region at a higher score: at FPPI 1 the recall is
    # 1 but below FPPI 1 nothing is found, so 8 of 9 reference points miss and one is 0: the
    # official arithmetic (log 0) gives 0, Caltech's floor (1e-10) ** (1/9).
    res = _evaluate(tmp_path, [person], [[10, 10, 40, 70], [110, 20, 150, 80]], [0.5, 0.8])
    assert res["MR2_Reasonable"] == 0.0
    res = _evaluate(tmp_path, [person], [[10, 10, 40, 70], [110, 20, 150, 80]], [0.5, 0.8],
                    zero_miss_rate="caltech_floor")
    assert res["MR2_Reasonable"] == pytest.approx(100 * math.exp(math.log(1e-10) / 9))
    # Visibility filter: a heavily occluded person counts for occ=heavy only.
    occluded = _ann(10, 10, 30, 60, vis=0.4)
    res = _evaluate(tmp_path, [occluded], [], [])
    assert math.isnan(res["MR2_Reasonable"]) and res["MR2_Reasonable_occ=heavy"] == 100.0


def test_evaluator_counts_every_registered_image(tmp_path):
    # Image 2 is never processed (a loader that dropped it): its person is a miss, as in the
    # official script, so recall is 1/2 at every reference point instead of 1.
    person = _ann(10, 10, 30, 60)
    res = _evaluate(tmp_path, [person], [[10, 10, 40, 70]], [0.9], num_images=2)
    assert res["MR2_Reasonable"] == pytest.approx(50.0)
    assert _evaluate(tmp_path, [person], [[10, 10, 40, 70]], [0.9])["MR2_Reasonable"] == 0.0
