"""``load_teacher``: one loading policy for every adapter and every kind of teacher.

* Every weight a stage runs must come from the file: found by running the stages once
  (``used_state_keys``), so it holds for torchvision, timm, mmseg and detectron2 teachers alike.
* Shapes must match where a stage uses the weight; values must be finite and floating point
  where the teacher's are. Weights outside the stages (a classifier of another task) may be
  absent or of another shape unless the caller requires them.
* With ``strict``, checkpoint keys the teacher lacks are refused, except a classifier head no
  stage could run (an ImageNet classifier's ``fc.*``): a classification checkpoint lends its
  trunk.
* The teacher is not frozen here: ``HybridForward`` freezes it.
"""
from __future__ import annotations

import logging
import warnings
from typing import Iterable, Mapping

import torch

from .teacher_weights import LoadReport, TeacherCheckpointError, load_teacher_weights
from .stage_usage import used_state_keys
from .stages import StagedBackbone
from .teacher_spec import TeacherSpec

logger = logging.getLogger(__name__)

# Classifier heads of classification checkpoints (torchvision, timm, mmpretrain): never used by
# a stage, so a strict teacher load accepts them in the file.
HEAD_PREFIXES = ("fc.", "classifier.", "head.", "heads.", "last_linear.", "head_drop.")
_LISTED = 8


def _listed(items: list[str]) -> str:
    return ", ".join(items[:_LISTED]) + (f" ... ({len(items)} in all)" if len(items) > _LISTED
                                         else "")


def load_teacher(staged: StagedBackbone, spec: TeacherSpec,
                 state: Mapping[str, torch.Tensor] | None = None,
                 require: Iterable[str] = ()) -> LoadReport | None:
    """Fills ``staged.model`` from ``spec.checkpoint`` (in place).

    Args:
        staged: the teacher network, split into stages.
        spec: the checkpoint and how its keys map onto the teacher.
        state: the file's weights if the caller has already read them (else read here).
        require: keys outside the stages that must load too (a KD teacher's classifier).

    Returns:
        The load report, or None for a random teacher (``allow_random_init``, warned).

    Raises:
        TeacherCheckpointError: the file cannot be read, or does not fit: a weight some stage
            uses is missing, a shape differs, a value is not finite or not floating point,
            or (strict) the file holds keys the teacher lacks. The message names the keys and
            the fix. Nothing is loaded then.
        UntrustedCheckpointError: the file names a class outside the allowlist.
    """
    model = staged.model
    if spec.checkpoint is None:
        warnings.warn("the teacher keeps its random initialisation (allow_random_init=True): "
                      "fine for tests, meaningless for knowledge transfer.", stacklevel=2)
        return None
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_teacher_weights(model, spec.checkpoint, prefix=spec.prefix, remap=spec.remap,
                                  strict=False, trust=spec.trust_checkpoint, state=state)
    needed = used_state_keys(staged) | set(require)
    missing = sorted(k for k in report.missing if k in needed)
    # A shape mismatch outside the stages is a head of another task (1000 ImageNet classes):
    # it stays unloaded, as a missing head does.
    mismatched = [m for m in report.mismatched if m.split(":", 1)[0] in needed]
    unexpected = [k for k in report.unexpected if not k.startswith(HEAD_PREFIXES)] \
        if spec.strict else []
    if missing or mismatched or unexpected:
        model.load_state_dict(before)  # a refused file leaves the teacher as it was
        raise TeacherCheckpointError(
            f"{spec.checkpoint} does not fit the teacher {type(model).__name__} "
            f"(prefix={spec.prefix!r}, {len(report.loaded)} keys match): "
            f"missing weights that stages use [{_listed(missing)}]; shape mismatches "
            f"[{_listed(mismatched)}]; unexpected keys [{_listed(unexpected)}]. Check "
            "that the teacher's type, depth and width are those the checkpoint was trained "
            "with (name the teacher by its training config to be sure), and `prefix` / "
            "`remap` against the checkpoint's key names (strict=False allows unexpected "
            "keys, never missing ones).")
    logger.info("teacher %s: %d tensors loaded from %s (%d unused keys in the file)",
                type(model).__name__, len(report.loaded), spec.checkpoint,
                len(report.unexpected))
    return report
