"""detectron2's side of the cheaper step variants: ``TRANSFER: hybrid_alternate`` follows the
trainer's iteration, ``TEACHER_PRECISION: bf16`` runs the teacher in bf16, bad values refused."""
import pytest
import torch

from tests.for_detectron2.d2_helpers import SYNTHETIC_CONFIGS, load_cfg

from hybridkt_ext.for_detectron2 import HybridKTTrainer  # noqa: E402


def _cfg(*opts):
    path = next(p for p in SYNTHETIC_CONFIGS if p.name == "hybridkt-mobilenetv1-fpn-synthetic.yaml")
    return load_cfg(path, list(opts))


def test_alternating_bf16_teacher_step_follows_the_storage_iteration(monkeypatch, tmp_path):
    from detectron2.structures import Boxes, Instances
    from detectron2.utils.events import EventStorage

    monkeypatch.setenv("HYBRIDKT_DATA", str(tmp_path))
    model = HybridKTTrainer.build_model(_cfg("MODEL.HYBRIDKT.TRANSFER", "hybrid_alternate",
                                             "MODEL.HYBRIDKT.TEACHER_PRECISION", "bf16"))
    assert model.backbone.engine.teacher_precision == "bf16"
    dtypes = []
    model.backbone.engine.teacher.stage(1).register_forward_hook(
        lambda m, i, out: dtypes.append(out.dtype))
    image = torch.randint(0, 255, (3, 64, 96), dtype=torch.float32)
    gt = Instances((64, 96), gt_boxes=Boxes(torch.tensor([[10.0, 8.0, 30.0, 60.0]])),
                   gt_classes=torch.tensor([0]))
    for iteration, key in ((4, "hkt_L1"), (5, "hkt_L2")):
        with EventStorage(iteration) as storage:
            model([{"image": image, "instances": gt}] * 2)["loss_hkt"].backward()
            logged = {k: v[0] for k, v in storage.latest().items()}
        assert logged["hkt_path"] == (1.0 if key == "hkt_L1" else 2.0)
        assert logged["hkt_alpha"] == pytest.approx(logged["hkt_L3"] / logged[key], rel=1e-5)
    assert dtypes and set(dtypes) == {torch.bfloat16}


def test_unknown_teacher_precision_is_refused_before_the_teacher_is_built():
    with pytest.raises(ValueError, match=r"MODEL.HYBRIDKT.TEACHER_PRECISION='fp8' must be one "
                                         r"of \['bf16', 'fp16'\] or \"\""):
        HybridKTTrainer.build_model(_cfg("MODEL.HYBRIDKT.TEACHER_PRECISION", "fp8"))
