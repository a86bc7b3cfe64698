"""A timm ViT teacher (issue 25, item 4) for a detectron2 CNN student, through the trainer.

``MODEL.HYBRIDKT.TEACHER.FRAMEWORK timm`` / ``ARCH vit_tiny_patch16_224``: random weights saved
by the test as its checkpoint; detectron2 builds timm ViTs with ``dynamic_img_size`` so that
they take its variable-size batches.
"""
import json

import torch

from tests.for_detectron2.d2_helpers import SYNTHETIC_CONFIGS, TINY, load_cfg, train_net_module

from hybridkt_ext.core.zoo_teachers import build_zoo_model  # noqa: E402
from hybridkt_ext.for_detectron2.hooks import find_teacher  # noqa: E402

CONFIG = next(p for p in SYNTHETIC_CONFIGS if p.name == "hybridkt-mobilenetv1-fpn-synthetic.yaml")


def test_a_timm_vit_teacher_trains_two_iterations(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDKT_DATA", str(tmp_path / "hkt_data"))
    torch.manual_seed(0)
    weights = build_zoo_model("timm.vit_tiny_patch16_224").state_dict()
    torch.save(weights, tmp_path / "vit_tiny.pth")
    cfg = load_cfg(CONFIG, TINY + [
        "SOLVER.MAX_ITER", "2", "OUTPUT_DIR", str(tmp_path / "out"),
        "MODEL.HYBRIDKT.TEACHER.FRAMEWORK", "timm",
        "MODEL.HYBRIDKT.TEACHER.ARCH", "vit_tiny_patch16_224",
        "MODEL.HYBRIDKT.TEACHER.WEIGHTS", str(tmp_path / "vit_tiny.pth")])
    trainer = train_net_module().Trainer(cfg)
    vit = find_teacher(trainer.model).model
    assert vit.dynamic_img_size
    assert torch.equal(vit.blocks[11].mlp.fc2.weight, weights["blocks.11.mlp.fc2.weight"])
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.json").read_text()
            .splitlines()]
    rows = [r for r in rows if "hkt_alpha" in r]
    assert rows and all(r["hkt_alpha"] > 0 and r["hkt_L1"] > 0 for r in rows)
