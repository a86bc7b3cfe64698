"""Mixed precision through mmengine's own AmpOptimWrapper and Runner, on a CUDA GPU.

AmpOptimWrapper asserts a GPU (``is_cuda_available() or npu/mlu/musa``) and builds
``torch.cuda.amp.GradScaler``; its ``optim_context`` runs the forward under
``mmengine.runner.amp.autocast`` (``torch.autocast('cuda', dtype)``), and ``update_params``
does ``scaler.scale(loss).backward()``, ``scaler.step``, ``scaler.update``. So these tests
cannot run on CPU and skip there; CPU fp16 with torch's GradScaler("cpu") through the core
(the division of labour between the scaler and NonFiniteLossError) is in
test_mixed_precision.py.

A few iterations of the synthetic hybrid config with ``optim_wrapper`` switched to
AmpOptimWrapper: the Runner places the model on the GPU by itself (``get_device()``), the
decode head really computes in half precision, alpha is logged finite (and is still
2*L3/(L1+L2): mmseg's cross-entropy runs in float32 under autocast), the student trains, and
the frozen teacher's weights and running statistics stay bit-identical.
"""
from __future__ import annotations

import math

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU: mmengine's AmpOptimWrapper asserts one (CPU fp16 with a "
                "GradScaler is tested in test_mixed_precision.py)", allow_module_level=True)
pytest.importorskip("mmseg.models", reason="MMSegmentation (with mmcv ops) is not installed")

from tests.for_mmseg.conftest import HYBRID_CONFIG, read_scalars, run_config  # noqa: E402

ITERS = 4


def _amp_options(dtype: str) -> dict:
    return {
        "optim_wrapper.type": "AmpOptimWrapper",
        "optim_wrapper.dtype": dtype,
        "optim_wrapper.loss_scale": "dynamic",
        # scalars.json rows: each iteration's own values, not a running mean over 10.
        "log_processor.window_size": 1,
    }


@pytest.mark.parametrize("dtype", [
    "float16",
    pytest.param("bfloat16", marks=pytest.mark.skipif(
        torch.cuda.is_available() and not torch.cuda.is_bf16_supported(),
        reason="this GPU has no bfloat16")),
])
def test_amp_optim_wrapper_trains_the_hybrid_config_on_gpu(tmp_path, dtype):
    from mmengine.optim import AmpOptimWrapper

    runner = run_config(HYBRID_CONFIG, tmp_path / "work", tmp_path / "data", iters=ITERS,
                        extra=_amp_options(dtype), train=False)
    model = getattr(runner.model, "module", runner.model)
    assert next(model.parameters()).is_cuda, "the Runner did not place the model on the GPU"
    teacher = model.backbone.teacher
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_before = {k: v.detach().clone()
                      for k, v in model.backbone.student.named_parameters()}
    head_dtypes: set[torch.dtype] = set()
    handle = model.decode_head.conv_seg.register_forward_hook(
        lambda _m, _i, out: head_dtypes.add(out.dtype))
    try:
        runner.train()
    finally:
        handle.remove()

    assert isinstance(runner.optim_wrapper, AmpOptimWrapper)
    assert runner.optim_wrapper.cast_dtype == getattr(torch, dtype)
    assert getattr(torch, dtype) in head_dtypes, f"no {dtype} forward: {head_dtypes}"
    scale = runner.optim_wrapper.loss_scaler.get_scale()
    assert math.isfinite(scale) and scale > 0

    rows = [r for r in read_scalars(tmp_path / "work") if "loss" in r]
    assert [r["step"] for r in rows] == list(range(1, ITERS + 1))
    for r in rows:
        values = [r[k] for k in ("hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3", "loss")]
        assert all(math.isfinite(v) for v in values), r
        assert r["hkt_alpha"] == pytest.approx(2 * r["hkt_L3"] / (r["hkt_L1"] + r["hkt_L2"]),
                                               rel=1e-3)

    after = teacher.state_dict()
    changed = [k for k in teacher_before if not torch.equal(teacher_before[k], after[k])]
    assert not changed, f"the frozen teacher changed under AMP: {changed[:5]}"
    # The scaler may skip an overflowing step, never all of them: the student did train.
    student_after = dict(model.backbone.student.named_parameters())
    assert any(not torch.equal(v, student_after[k]) for k, v in student_before.items())
    assert (tmp_path / "work" / f"iter_{ITERS}.pth").exists()
