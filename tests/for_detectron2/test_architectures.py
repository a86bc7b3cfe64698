"""Every detectron2 meta-architecture trains with hybrid forward, from detectron2's own configs.

Each case is a YAML of detectron2's model zoo, converted the way a user's leaf config does it
(``CONVERSION`` plus the backbone builder named in the case) and trained 2 iterations by
HybridKTTrainer on the synthetic CityPersons with dense targets (masks, keypoints, semantic
labels derived from the boxes). The meta-architecture and its heads stay detectron2's:
GeneralizedRCNN (Faster, Mask, Cascade, Keypoint), RetinaNet, PanopticFPN, SemanticSegmentor,
and C4 Faster R-CNN (res5 inside Res5ROIHeads).
"""
import json

import pytest
import torch

from tests.for_detectron2.d2_helpers import train_net_module
from detectron2 import model_zoo  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402

from hybridkt_ext.for_detectron2 import add_hybridkt_config, find_hybrid_bottom_up  # noqa: E402
from hybridkt_ext.for_detectron2.hooks import find_teacher  # noqa: E402

# What a converted leaf config sets besides MODEL.BACKBONE.NAME: the student's own bottom-up
# builder and the teacher (random here: the machinery is under test, not the transfer).
CONVERSION = ["MODEL.HYBRIDKT.STUDENT_BOTTOM_UP", "build_resnet_backbone",
              "MODEL.HYBRIDKT.TEACHER.ARCH", "resnet18",
              "MODEL.HYBRIDKT.TEACHER.ALLOW_RANDOM_INIT", "True"]
# The run on CPU in seconds: no ImageNet download, small images, the dense synthetic data.
SMALL = ["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu", "MODEL.RESNETS.DEPTH", "50",
         "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MAX_SIZE_TRAIN", "256",
         "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "256",
         "DATASETS.TRAIN", "('citypersons_synthetic_mini_dense_train',)", "DATASETS.TEST", "()",
         "DATALOADER.NUM_WORKERS", "0", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "2",
         "SOLVER.BASE_LR", "0.001", "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "()",
         "SOLVER.CHECKPOINT_PERIOD", "100", "MODEL.ROI_HEADS.NUM_CLASSES", "1",
         "MODEL.RETINANET.NUM_CLASSES", "1", "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "2",
         "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "64", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "200"]
FPN = "build_hybridkt_fpn_backbone"
CASES = {
    "faster_rcnn": ("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml", FPN),
    "mask_rcnn": ("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml", FPN),
    "cascade_mask_rcnn": ("Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml", FPN),
    "keypoint_rcnn": ("COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x.yaml", FPN),
    "retinanet": ("COCO-Detection/retinanet_R_50_FPN_1x.yaml",
                  "build_hybridkt_retinanet_fpn_backbone"),
    "panoptic_fpn": ("COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml", FPN),
    "semantic_fpn": ("Misc/semantic_R_50_FPN_1x.yaml", FPN),
    "faster_rcnn_c4": ("COCO-Detection/faster_rcnn_R_50_C4_1x.yaml", "build_hybridkt_backbone"),
}


@pytest.fixture(autouse=True)
def synthetic_data(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HYBRIDKT_DATA", str(tmp_path_factory.getbasetemp() / "hkt_data"))


def converted(name: str, backbone: str, *opts: str):
    cfg = get_cfg()
    add_hybridkt_config(cfg)
    cfg.merge_from_file(model_zoo.get_config_file(name))
    cfg.merge_from_list(["MODEL.BACKBONE.NAME", backbone, *CONVERSION, *SMALL, *opts])
    return cfg


@pytest.mark.parametrize("case", list(CASES))
def test_a_converted_model_zoo_config_trains(case, tmp_path):
    name, backbone = CASES[case]
    cfg = converted(name, backbone, "OUTPUT_DIR", str(tmp_path))
    trainer = train_net_module().Trainer(cfg)
    model = trainer.model
    assert type(model).__name__ == cfg.MODEL.META_ARCHITECTURE  # detectron2's own class
    assert find_hybrid_bottom_up(model) is not None
    teacher = find_teacher(model)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    rows = [r for r in rows if "hkt_alpha" in r]  # written at the last iteration
    assert rows and rows[-1]["iteration"] == 1
    for row in rows:
        alpha = 2 * row["hkt_L3"] / (row["hkt_L1"] + row["hkt_L2"])
        assert row["hkt_alpha"] == pytest.approx(alpha, rel=1e-4)
    # The student path's own losses are logged one by one.
    assert any(k.startswith("hkt_L3/loss_") for k in rows[-1])
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("case", ["retinanet", "faster_rcnn_c4", "semantic_fpn"])
def test_the_exported_student_is_the_plain_model(case, tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from hybridkt_ext.for_detectron2 import save_student_checkpoint

    name, backbone = CASES[case]
    cfg = converted(name, backbone)
    torch.manual_seed(0)
    model = train_net_module().Trainer.build_model(cfg).eval()
    save_student_checkpoint(model, tmp_path / "student.pth", cfg=cfg)
    plain_cfg = get_cfg()  # plain detectron2: no hybridkt keys added
    plain_cfg.merge_from_file(str(tmp_path / "student.yaml"))
    assert "HYBRIDKT" not in plain_cfg.MODEL and plain_cfg.MODEL.BACKBONE.NAME != backbone
    plain = build_model(plain_cfg).eval()
    incompatible = DetectionCheckpointer(plain)._load_model(torch.load(tmp_path / "student.pth"))
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    image = torch.randint(0, 255, (3, 96, 128), dtype=torch.float32)
    with torch.no_grad():
        ours, theirs = model([{"image": image}])[0], plain([{"image": image}])[0]
    assert ours.keys() == theirs.keys()
    for key in ours:
        if key == "instances":
            assert torch.equal(ours[key].scores, theirs[key].scores)
            assert torch.equal(ours[key].pred_boxes.tensor, theirs[key].pred_boxes.tensor)
        else:
            assert torch.equal(ours[key], theirs[key])
