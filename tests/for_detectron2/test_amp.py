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

from hybridkt_ext.for_detectron2.hooks import find_teacher  # noqa: E402

HYBRID = CONFIGS / "hybridkt-mobilenetv1-fpn-synthetic.yaml"
NEEDS_CUDA = ("detectron2's AMPTrainer.run_step asserts torch.cuda.is_available() "
              "('[AMPTrainer] CUDA is required for AMP training!')")


@pytest.fixture(autouse=True)
def synthetic_data(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HYBRIDKT_DATA", str(tmp_path_factory.getbasetemp() / "hkt_data"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_amp_without_cuda_is_refused_naming_the_field(tmp_path):
    cfg = load_cfg(HYBRID, TINY + ["SOLVER.AMP.ENABLED", "True", "OUTPUT_DIR", str(tmp_path)])
    with pytest.raises(ValueError, match="SOLVER.AMP.ENABLED") as err:
        train_net_module().Trainer(cfg)
    assert "MODEL.DEVICE" in str(err.value) and "False" in str(err.value)


def test_autocast_reaches_every_layer_of_the_three_paths():
    # What AMP changes on the path that runs: the layers compute in bfloat16. Every convolution
    # and linear layer of the model (student, teacher, the adapters at both crossings, FPN,
    # heads) must run, and only in bfloat16: one the paths skip, or one left in float32 (a
    # crossing that casts its input, a teacher run outside autocast), is named here.
    cfg = load_cfg(HYBRID, TINY)
    model = train_net_module().Trainer.build_model(cfg)  # wired as tools/train_net.py does
    dtypes: dict[str, set[torch.dtype]] = {}
    for name, layer in model.named_modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
            dtypes[name] = set()
            layer.register_forward_hook(lambda mod, inp, out, seen=dtypes[name]: seen.add(
                out.dtype))
    data = next(iter(build_detection_train_loader(cfg)))
    with EventStorage(0) as storage, torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(data)
        total = sum(losses.values())  # what (AMP)SimpleTrainer does with the dict
    assert {n: d for n, d in dtypes.items() if d != {torch.bfloat16}} == {}
    logged = {k: v for k, (v, _) in storage.latest().items() if k.startswith("hkt_")}
    assert {"hkt_L1", "hkt_L2", "hkt_L3"} <= set(logged)  # the three paths' losses
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
    assert (tmp_path / "alpha_and_path_losses.png").exists()
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
