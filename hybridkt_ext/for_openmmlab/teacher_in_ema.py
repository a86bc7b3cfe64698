"""The frozen teacher kept out of mmengine's EMA model, as it is kept out of checkpoints.

``EMAHook.before_run`` deep-copies the whole model, teacher included, into an averaged model.
Left alone that copy (1) doubles the teacher in memory, (2) "averages" frozen tensors every
step, and (3) breaks the first checkpoint: ``drop_teacher`` removes the teacher from
``state_dict``, EMAHook then writes ``ema_state_dict`` with the teacher's keys and
``_swap_ema_state_dict`` fails with ``KeyError: backbone.engine.teacher...``.

``exclude_teacher_from_ema`` runs once the EMA model exists: in ``HybridKTHook``'s
``after_load_checkpoint`` (mmengine loads or resumes after every ``before_run`` but before
``before_train``; this hook's VERY_HIGH priority runs it before EMAHook's load) and
``before_train`` (a run that loads nothing); it is idempotent. For each averaged model
of an ``EMAHook`` it:

* puts the source model's teacher in place of the copy (one teacher in memory; parameter order
  is unchanged, so EMAHook's swaps by position still pair tensors, a teacher tensor with
  itself);
* stops averaging the teacher's tensors;
* drops the teacher's keys from the EMA model's ``state_dict`` (checkpoints' ``ema_`` keys);
  on load the shared teacher fills them itself (``teacher_on_load``), so a strict resume is
  complete and the teacher always comes from its own file.

The checkpoint's ``state_dict`` then holds the EMA weights (EMAHook's swap, for deployment), so
the student export writes the student's EMA weights.
"""
from __future__ import annotations

from torch import nn

from .teacher_in_checkpoints import _teacher_prefix, find_backbone, unwrap

EMA_PREFIX = "module."  # BaseAveragedModel registers the averaged copy as `module`


def _averaged_models(runner) -> list[nn.Module]:
    """The averaged models of the runner's EMA hooks (mmengine's EMAHook and subclasses)."""
    from mmengine.hooks import EMAHook

    return [hook.ema_model for hook in runner.hooks
            if isinstance(hook, EMAHook) and getattr(hook, "ema_model", None) is not None]


def exclude_teacher_from_ema(runner) -> None:
    """Shares the teacher with every EMA model and keeps it out of averaging and ``ema_`` keys."""
    model = unwrap(runner.model)
    backbone = find_backbone(model)
    if backbone is None or backbone.teacher is None:
        return
    prefix = _teacher_prefix(model, backbone)
    teacher = backbone.teacher
    for ema in _averaged_models(runner):
        copied = find_backbone(ema.module)
        if copied is None or copied.teacher is teacher:
            continue  # not a copy of this model, or already done
        copied.engine.teacher = teacher
        ema_prefix = EMA_PREFIX + prefix
        # avg_parameters holds the copy's tensors by key ('…teacher.…' without 'module.').
        for key in [k for k in ema.avg_parameters if k.startswith(prefix)]:
            del ema.avg_parameters[key]
        ema._register_state_dict_hook(_drop_keys_hook(ema_prefix))


def _drop_keys_hook(prefix: str):
    def drop(module, state_dict, local_prefix, local_metadata):
        for key in [k for k in state_dict if k.startswith(local_prefix + prefix)]:
            del state_dict[key]
        return state_dict
    return drop

