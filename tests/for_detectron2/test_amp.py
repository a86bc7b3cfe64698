"""SOLVER.AMP.ENABLED: detectron2's AMPTrainer with the wired GeneralizedRCNN and HybridKTHook.

detectron2's AMPTrainer asserts ``torch.cuda.is_available()`` in every ``run_step`` and autocasts
with ``torch.cuda.amp.autocast`` (float16), so the real two-iteration run needs a GPU. Without
one, the tests check that the trainer refuses at construction with a message naming the field,
and run the model's training step under CPU bfloat16 autocast, the code path AMPTrainer drives.
"""
import json

import pytest
import torch

from tests.for_detectron2.d2_helpers import CONFIGS, TINY, load_cfg, train_net_module
from detectron2.data import build_detection_train_loader  # noqa: E402
from detectron2.engine import AMPTrainer  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

from hybridkt_ext.core import LossBalancer  # noqa: E402
from hybridkt_ext.for_detectron2 import find_hybrid_bottom_up  # noqa: E402
from hybridkt_ext.for_detectron2.hooks import find_teacher  # noqa: E402

HYBRID = CONFIGS / "hybridkt-mobilenetv1-fpn-synthetic.yaml"
NEEDS_CUDA = ("detectron2's AMPTrainer.run_step asserts torch.cuda.is_available() "
              "('[AMPTrainer] CUDA is required for AMP training!')")


@pytest.fixture(autouse=True)
def synthetic_data(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HYBRIDKT_DATA", str(tmp_path_factory.getbasetemp() / "hkt_data"))


class RecordingBalancer(LossBalancer):
    """The model's own balancer, keeping what it returned (to check dtypes)."""

    def __init__(self, balancer: LossBalancer) -> None:
        # fixed_alpha only where it applies: LossBalancer refuses it in the other modes.
        super().__init__(balancer.mode,
                         balancer.fixed_alpha if balancer.mode == "fixed" else None,
                         balancer.sync_across_ranks)
        self.calls = []

    def __call__(self, l1, l2, l3, step=None):
        out = super().__call__(l1, l2, l3, step=step)
        self.calls.append(((l1.dtype, l2.dtype, l3.dtype), out))  # (input dtypes, result)
        return out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_amp_without_cuda_is_refused_naming_the_field(tmp_path):
    cfg = load_cfg(HYBRID, TINY + ["SOLVER.AMP.ENABLED", "True", "OUTPUT_DIR", str(tmp_path)])
    with pytest.raises(ValueError, match="SOLVER.AMP.ENABLED") as err:
        train_net_module().Trainer(cfg)
    assert "MODEL.DEVICE" in str(err.value) and "False" in str(err.value)


def test_hybrid_step_under_autocast_balances_in_float32():
    cfg = load_cfg(HYBRID, TINY)
    model = train_net_module().Trainer.build_model(cfg)  # wired as tools/train_net.py does
    step = find_hybrid_bottom_up(model).transfer_step
    step.balancer = RecordingBalancer(step.balancer)
    conv_dtypes = set()  # proof that autocast reached the networks
    for conv in (m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d)):
        conv.register_forward_hook(lambda mod, inp, out: conv_dtypes.add(out.dtype))
    data = next(iter(build_detection_train_loader(cfg)))
    with EventStorage(0) as storage, torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(data)
        total = sum(losses.values())  # what (AMP)SimpleTrainer does with the dict
    assert conv_dtypes == {torch.bfloat16}
    (_, balanced), = step.balancer.calls
    assert balanced.alpha.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in (balanced.l1, balanced.l2, balanced.l3))
    logged = {k: v for k, (v, _) in storage.latest().items() if k.startswith("hkt_")}
    expected = 2 * logged["hkt_L3"] / (logged["hkt_L1"] + logged["hkt_L2"])
    assert logged["hkt_alpha"] == pytest.approx(expected, rel=1e-6)
    assert torch.isfinite(total)
    total.backward()
    teacher = find_teacher(model)
    assert all(p.grad is None for p in teacher.parameters())
    student = model.backbone.engine.student
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NEEDS_CUDA)
def test_two_iterations_under_amp_trainer(tmp_path):
    opts = TINY + ["MODEL.DEVICE", "cuda", "SOLVER.AMP.ENABLED", "True", "SOLVER.MAX_ITER", "2",
                   "OUTPUT_DIR", str(tmp_path)]
    trainer = train_net_module().Trainer(load_cfg(HYBRID, opts))
    assert isinstance(trainer._trainer, AMPTrainer)
    teacher = find_teacher(trainer.model)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    row = [r for r in rows if "hkt_alpha" in r][-1]
    assert row["hkt_alpha"] == pytest.approx(2 * row["hkt_L3"] / (row["hkt_L1"] + row["hkt_L2"]),
                                             rel=1e-4)
    assert (tmp_path / "hkt_alpha_losses.png").exists()
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
