"""Checkpoints of an OpenMMLab run without the teacher, and the checks when one is loaded.

Checkpoints do not carry the teacher. Its weights are the config's teacher file, loaded when
the model is built; storing them again in every checkpoint would double-book them (a
ResNet-101 teacher adds ~170 MB per file) and, on resume, let mmengine silently overwrite the
teacher loaded from the file with the checkpoint's copy. So ``drop_teacher`` removes the
teacher's tensors and records their SHA-256 fingerprint (and the file's path) under
``meta['hybridkt']``; ``restore_teacher`` compares that fingerprint with the teacher just built
from its file (``core.TeacherGuard``: resuming with another teacher is a
``TeacherMismatchError``, loading only warns), then fills the checkpoint's state dict with the
built teacher so mmengine's load is complete and never replaces it. A checkpoint written
without the hook still holds the teacher: its tensors are fingerprinted and checked the same
way.

On resume, ``check_resumable`` also refuses a checkpoint trained with another transfer mode or
whose keys differ from the model's (the student, ``switch_points`` or ``stage_groups`` changed
since): torch would fail later on the optimiser's parameter groups without saying why.
"""
from __future__ import annotations

from typing import Mapping

from mmengine.model import is_model_wrapper
from torch import nn

from hybridkt_ext.core import (CheckpointMismatchError, TeacherGuard, TeacherSource,
                               teacher_fingerprint)

from .hybrid_backbone import OpenMMLabHybridBackbone

META_KEY = "hybridkt"  # checkpoint['meta'][META_KEY]: which teacher the checkpoint was trained with
FRESH_START = "train with load_from=<checkpoint> instead of --resume"


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP and the other mmengine wrappers."""
    return model.module if is_model_wrapper(model) else model


def find_backbone(model: nn.Module) -> OpenMMLabHybridBackbone | None:
    """The hybrid backbone of ``model`` (wrappers unwrapped), or None."""
    return next((m for m in unwrap(model).modules()
                 if isinstance(m, OpenMMLabHybridBackbone)), None)


def is_resuming(runner) -> bool:
    """Whether the runner resumes (mmengine 0.10.7 keeps it only in ``Runner._resume``; a runner
    without it is treated as resuming, the strict case)."""
    return getattr(runner, "_resume", True)


def teacher_file(runner) -> str | None:
    """The teacher file named by the config (for messages and the record), if it says."""
    cfg = getattr(runner, "cfg", None) or {}
    teacher = ((cfg.get("model") or {}).get("backbone") or {}).get("teacher") or {}
    if isinstance(teacher, (list, tuple)):  # several teachers: their files, in order
        files = [str(t.get("checkpoint")) for t in teacher if isinstance(t, Mapping)]
        return ", ".join(files) or None
    return teacher.get("checkpoint") if isinstance(teacher, Mapping) else None


def _teacher_prefix(model: nn.Module, backbone: OpenMMLabHybridBackbone) -> str:
    """The teacher's key prefix in ``model``'s state dict, e.g. 'backbone.engine.teacher.'."""
    name = next(n for n, m in model.named_modules() if m is backbone.teacher)
    return f"{name}." if name else ""


def drop_teacher(runner, checkpoint: dict) -> None:
    """Removes the teacher's tensors from a checkpoint about to be saved; records the transfer
    mode, the teacher's fingerprint and its file in the meta."""
    model = unwrap(runner.model)
    backbone = find_backbone(model)
    if backbone is None:
        return
    record = checkpoint.setdefault("meta", {}).setdefault(META_KEY, {})
    record["transfer"] = backbone.transfer
    state = checkpoint.get("state_dict")
    if backbone.teacher is None or not isinstance(state, dict):
        return
    prefix, teacher_state = _teacher_prefix(model, backbone), backbone.teacher.state_dict()
    for key in teacher_state:
        state.pop(prefix + key, None)
    record.update(
        teacher_sha256=teacher_fingerprint(teacher_state),
        teacher_checkpoint=teacher_file(runner),
        teacher_random_init=backbone.teacher_random_init,
        teacher_tensors=len(teacher_state),
        teacher_in_checkpoint=False)


def restore_teacher(runner, checkpoint: dict) -> None:
    """Checks the checkpoint's teacher against the built one, then puts the built teacher into
    the state dict mmengine loads (the teacher always comes from its own file)."""
    model = unwrap(runner.model)
    backbone = find_backbone(model)
    state = checkpoint.get("state_dict")
    if backbone is None or backbone.teacher is None or not isinstance(state, dict):
        return
    prefix, teacher_state = _teacher_prefix(model, backbone), backbone.teacher.state_dict()
    record = dict((checkpoint.get("meta") or {}).get(META_KEY) or {})
    stored = {k[len(prefix):]: state.pop(k) for k in list(state) if k.startswith(prefix)}
    trained_with = record.get("teacher_sha256")
    if trained_with is None and stored:  # written without the hook: the teacher is inside
        trained_with = teacher_fingerprint(stored)
        record["teacher_checkpoint"] = "the checkpoint itself"
    if trained_with is not None:
        warning = TeacherGuard(backbone.teacher, "HybridKTHook").check_loaded(
            trained_with,
            TeacherSource("model.backbone.teacher.checkpoint", teacher_file(runner), FRESH_START),
            resuming=is_resuming(runner), trained_from=record.get("teacher_checkpoint"),
            random_init=bool(record.get("teacher_random_init")))
        if warning is not None:
            runner.logger.warning(warning)
    state.update({prefix + k: v.detach().clone() for k, v in teacher_state.items()})


def check_resumable(runner, checkpoint: dict) -> None:
    """Refuses to resume from a checkpoint of another transfer mode or another model layout.

    Raises:
        CheckpointMismatchError: naming the mode, or the keys that differ.
    """
    backbone = find_backbone(runner.model)
    if backbone is None or not is_resuming(runner):
        return
    trained = ((checkpoint.get("meta") or {}).get(META_KEY) or {}).get("transfer")
    if trained is not None and trained != backbone.transfer:
        raise CheckpointMismatchError(
            f"HybridKTHook: the checkpoint to resume was trained with "
            f"model.backbone.transfer={trained!r}, and this config sets {backbone.transfer!r}: "
            f"its optimiser state belongs to other parameters. Resume with transfer={trained!r}, "
            "or start a new run from these weights with load_from=<checkpoint> instead of "
            "--resume.")
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        return
    expected = set(unwrap(runner.model).state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        differences = [f"{len(keys)} {what} ({', '.join(keys[:4])}"
                       f"{' ...' if len(keys) > 4 else ''})"
                       for keys, what in ((missing, "model keys are not in it"),
                                          (unexpected, "of its keys are not in the model"))
                       if keys]
        raise CheckpointMismatchError(
            "HybridKTHook: the checkpoint to resume does not fit the model built from this "
            f"config: {'; '.join(differences)}. The student, switch_points or stage_groups "
            "changed since that run? Resume with the config the run was started with (a copy "
            "is in its work dir), or start a new run from these weights with "
            "load_from=<checkpoint> instead of --resume.")
