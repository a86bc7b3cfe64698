"""Which of a model's tensors its stages use, found by running them (for teacher-weight checks).

A teacher checkpoint may legitimately lack weights that no stage runs (an ImageNet
classifier's ``fc``, a detector's heads) but must provide every weight a stage does run.
Reading that off the stage declarations would need one rule per kind of stage callable; running
the stages once on a probe and recording what they touched works for all of them:

* modules called during the probe contribute their own parameters and buffers;
* parameters used directly by a stage callable (a ViT's ``cls_token`` and ``pos_embed``, which
  no submodule call reaches) are found by the gradient they receive from the probe's output.
"""
from __future__ import annotations

import torch

from .stage_cutting import declared_probe_size
from .stages import StagedBackbone, feature_map

_COUNTER_SUFFIX = "num_batches_tracked"


def used_state_keys(staged: StagedBackbone, in_channels: int = 3,
                    probe_size: int | None = None) -> set[str]:
    """State-dict keys of ``staged.model`` that running all stages reads (counters excluded).

    The probe runs in eval mode with every training and ``requires_grad`` flag restored, so a
    frozen teacher stays frozen and no running statistic changes.
    """
    model = staged.model
    # Default: the size the stages were cut at (a BEiT's position tables take no other).
    probe_size = declared_probe_size(model) if probe_size is None else probe_size
    called: set[int] = set()
    handles = [m.register_forward_pre_hook(lambda mod, _args: called.add(id(mod)))
               for m in model.modules()]
    flags = [(m, m.training) for m in model.modules()]
    grad_flags = [(p, p.requires_grad) for p in model.parameters()]
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None else torch.float32
    model.eval()
    try:
        for p, _ in grad_flags:
            p.requires_grad_(True)
            p.grad = None
        x = torch.zeros((1, in_channels, probe_size, probe_size), device=device, dtype=dtype)
        outputs = staged(x)
        # feature_map: a ViT stage's output also carries its prefix tokens (StageSpec).
        total = sum(feature_map(out).float().sum() for out in outputs)
        if total.requires_grad:
            total.backward()
    finally:
        for handle in handles:
            handle.remove()
        for module, training in flags:
            module.training = training
        for p, requires_grad in grad_flags:
            p.requires_grad_(requires_grad)
    used: set[int] = set()
    for module in model.modules():
        if id(module) in called:
            used.update(id(t) for t in module.parameters(recurse=False))
            used.update(id(t) for t in module.buffers(recurse=False))
    for p, _ in grad_flags:
        if p.grad is not None:
            used.add(id(p))
            p.grad = None
    named = dict(model.named_parameters())
    named.update(dict(model.named_buffers()))
    return {k for k, t in named.items() if id(t) in used and not k.endswith(_COUNTER_SUFFIX)}
