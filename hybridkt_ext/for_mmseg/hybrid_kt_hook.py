"""``HybridKTHook``: wires the segmentor to the transfer step, checks the frozen teacher, and
keeps the teacher out of checkpoints.

Before the run it makes any segmentor whose backbone is a ``HybridBackbone`` train through the
transfer step (``transfer_wiring``): that, the backbone swap and this hook are the whole
conversion of a config, whatever the segmentor (EncoderDecoder, CascadeEncoderDecoder, ...).

alpha, L1, L2 and L3 reach the MessageHub through the loss dict (mmengine's RuntimeInfoHook
stores every ``log_vars`` entry as ``train/<key>``), so LoggerHook, ``vis_data/scalars.json``
and TensorBoard show them at every logging interval with no extra code; this hook adds the
last iteration when the interval skips it (a run shorter than the interval logs too). It does
what the loss dict cannot: fail before the first step if the teacher is not frozen, verify after
training that the teacher's weights and running statistics are unchanged, and keep the
teacher out of checkpoints.

Checkpoints do not carry the teacher. Its weights are the config's teacher file, loaded when
the model is built; storing them again in every checkpoint would double-book them (a
ResNet-101 teacher adds ~170 MB per file) and, on resume, let mmengine silently overwrite the
teacher loaded from the file with the checkpoint's copy. So ``before_save_checkpoint`` drops
the teacher's tensors and records their SHA-256 fingerprint (and the file's path) under
``meta['hybridkt']``; ``after_load_checkpoint`` compares that fingerprint with the teacher just
built from its file and refuses to resume when they differ (``TeacherMismatchError``), then
fills the checkpoint's state dict with the built teacher so mmengine's load is complete and
never replaces it. A checkpoint written without this hook still holds the teacher: its
tensors are fingerprinted and checked the same way. A missing teacher file already fails
while the model is built (``TeacherCheckpointError`` from the teacher builder).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from mmengine.dist import is_main_process
from mmengine.hooks import Hook, LoggerHook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS
from torch import nn

from hybridkt_ext.core import (CheckpointMismatchError, HybridTrainingError,
                               TeacherMismatchError, TeacherNotFrozenError,
                               UnsupportedBackboneError, assert_teacher_frozen,
                               teacher_fingerprint)
from hybridkt_ext.core.teacher_fingerprint import tensor_digests

from ..plotting import plot_alpha_and_path_losses
from .hybrid_backbone import HybridBackbone
from .transfer_wiring import install_transfer_step

# mmseg segmentors that have no backbone for HybridBackbone to take the place of, and why.
SEGMENTORS_WITHOUT_A_BACKBONE = {
    "MultimodalEncoderDecoder": "its CLIP image encoder feeds the decode head intermediate "
                                "layers together with text embeddings (SAN), not through a "
                                "`backbone`",
    "DepthEstimator": "it estimates depth with VPD's diffusion UNet, which is not one chain of "
                      "stages",
}
PLOT_NAME = "alpha_and_path_losses.png"  # written into the work dir after training
META_KEY = "hybridkt"  # checkpoint['meta'][META_KEY]: which teacher the checkpoint was trained with


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


def _teacher_prefix(model: nn.Module, backbone: HybridBackbone) -> str:
    """The teacher's key prefix in ``model``'s state dict, e.g. 'backbone.engine.teacher.'."""
    name = next(n for n, m in model.named_modules() if m is backbone.teacher)
    return f"{name}." if name else ""


def _teacher_source(runner) -> str | None:
    """The teacher file named by the config (for messages), if the config says."""
    cfg = getattr(runner, "cfg", None) or {}
    teacher = ((cfg.get("model") or {}).get("backbone") or {}).get("teacher") or {}
    return teacher.get("checkpoint") if isinstance(teacher, Mapping) else None


def _log_the_last_iteration(runner, batch_idx: int) -> None:
    """Writes the last training iteration's log line and scalars (alpha, L1..L3 included) when
    mmengine's LoggerHook would not: it logs every ``interval`` iterations only, so a run
    shorter than the interval (a 4-iteration smoke run) or not a multiple of it would end
    without its last values, where detectron2's writers always write the last iteration.
    The same calls as LoggerHook's, on the same file; this hook runs before LoggerHook."""
    logger = next((h for h in runner.hooks if isinstance(h, LoggerHook)), None)
    if logger is None or logger.every_n_inner_iters(batch_idx, logger.interval) or (
            logger.end_of_epoch(runner.train_dataloader, batch_idx)
            and (not logger.ignore_last or len(runner.train_dataloader) <= logger.interval)):
        return  # LoggerHook logs this iteration itself (or nothing logs at all)
    tag, log_str = runner.log_processor.get_log_after_iter(runner, batch_idx, "train")
    runner.logger.info(log_str)
    runner.visualizer.add_scalars(tag, step=runner.iter + 1, file_path=logger.json_log_path)


@HOOKS.register_module()
class HybridKTHook(Hook):
    """Checks the frozen teacher, and keeps it out of checkpoints (see module doc).

    Args:
        require_hybrid: fail if the model has no HybridBackbone (catches a config whose
            backbone override did not apply).
        verify_teacher_unchanged: compare the teacher's tensors (SHA-256 each) after training
            with those before it.
    """

    priority = "VERY_HIGH"

    def __init__(self, require_hybrid: bool = True, verify_teacher_unchanged: bool = True) -> None:
        if not isinstance(require_hybrid, bool) or not isinstance(verify_teacher_unchanged, bool):
            raise ValueError("HybridKTHook: require_hybrid and verify_teacher_unchanged must be "
                             "True or False.")
        self.require_hybrid = require_hybrid
        self.verify_teacher_unchanged = verify_teacher_unchanged
        self._before: dict[str, str] = {}
        self._rows: list[dict[str, float]] = []

    @staticmethod
    def find_backbone(model: nn.Module) -> HybridBackbone | None:
        """The HybridBackbone of ``model`` (DDP and other mmengine wrappers unwrapped)."""
        return next((m for m in _unwrap(model).modules() if isinstance(m, HybridBackbone)), None)

    def before_run(self, runner) -> None:
        # Any segmentor with a HybridBackbone: its own loss runs the transfer mode's paths.
        install_transfer_step(_unwrap(runner.model))

    def before_train(self, runner) -> None:
        backbone = self.find_backbone(runner.model)
        if backbone is None:
            if self.require_hybrid:
                kind = type(_unwrap(runner.model)).__name__
                if kind in SEGMENTORS_WITHOUT_A_BACKBONE:
                    raise UnsupportedBackboneError(
                        f"HybridKTHook: {kind} cannot train with hybrid forward: "
                        f"{SEGMENTORS_WITHOUT_A_BACKBONE[kind]}. Segmentors that do: "
                        "EncoderDecoder, CascadeEncoderDecoder (and their subclasses).")
                raise HybridTrainingError(
                    "HybridKTHook: the model has no HybridBackbone; set "
                    "model.backbone=dict(type='HybridBackbone', student=..., teacher=...) or "
                    "remove the hook.")
            return
        if backbone.teacher is None:
            return
        try:
            assert_teacher_frozen(backbone.teacher)
        except TeacherNotFrozenError as err:
            raise TeacherNotFrozenError(f"HybridKTHook, before training: {err}") from err
        if self.verify_teacher_unchanged:
            self._before = tensor_digests(backbone.teacher.state_dict())
        runner.logger.info(
            f"HybridKTHook: transfer={backbone.transfer}, teacher "
            f"{type(backbone.teacher.model).__name__} frozen, stages "
            + ", ".join(f"{s.name}(C={s.channels},/{s.reduction})"
                        for s in backbone.teacher.stage_specs))
        plan = backbone.engine.plan
        if plan is not None:  # the names the logged scalars stand for
            runner.logger.info(
                f"HybridKTHook: hkt_L1 = student-first path ({' '.join(plan.student_first)}), "
                f"hkt_L2 = teacher-first path ({' '.join(plan.teacher_first)}), hkt_L3 = "
                "student path (its head losses: hkt_L3.<head>.<loss>); the optimised loss_hkt "
                "= hkt_alpha * (hkt_L1 + hkt_L2) + hkt_L3.")
        if backbone.teacher_random_init:
            runner.logger.warning(
                "HybridKTHook: the teacher is randomly initialised (teacher.allow_random_init="
                "True, no checkpoint): it transfers no knowledge. Fine for a smoke run only; "
                "set model.backbone.teacher.checkpoint to a trained teacher.")

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        hub = runner.message_hub
        row = {}
        for key in ("hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3"):
            scalar = hub.log_scalars.get(f"train/{key}")
            if scalar is not None:
                row[key] = float(scalar.current())
        if row:
            self._rows.append({"step": runner.iter + 1, **row})
        if row and runner.iter + 1 == runner.max_iters:
            _log_the_last_iteration(runner, batch_idx)

    def after_train(self, runner) -> None:
        if self._rows and any("hkt_alpha" in r for r in self._rows) and is_main_process():
            path = plot_alpha_and_path_losses({"hybrid forward": self._rows},
                                              Path(runner.work_dir) / PLOT_NAME)
            runner.logger.info(f"HybridKTHook: alpha and the path losses plotted to {path}")
        backbone = self.find_backbone(runner.model)
        if backbone is None or backbone.teacher is None or not self._before:
            return
        after = tensor_digests(backbone.teacher.state_dict())
        changed = [k for k, v in after.items() if v != self._before.get(k, v)]
        if changed:
            raise RuntimeError(f"HybridKTHook: the teacher changed during training: {changed[:5]}"
                               f"{' ...' if len(changed) > 5 else ''}. Something trained or "
                               "re-initialised it; its weights are the transferred knowledge.")

    def _teacher_in(self, runner, checkpoint: dict) -> tuple[dict, str, dict] | None:
        """(checkpoint state dict, the teacher's key prefix in it, the built teacher's state),
        or None when the model has no teacher or the checkpoint no state dict."""
        model = _unwrap(runner.model)
        backbone = self.find_backbone(model)
        state = checkpoint.get("state_dict")
        if backbone is None or backbone.teacher is None or not isinstance(state, dict):
            return None
        return state, _teacher_prefix(model, backbone), backbone.teacher.state_dict()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Drops the teacher's tensors; records the transfer mode, the teacher's fingerprint
        and its file in the meta."""
        backbone = self.find_backbone(runner.model)
        if backbone is None:
            return
        record = checkpoint.setdefault("meta", {}).setdefault(META_KEY, {})
        record["transfer"] = backbone.transfer
        found = self._teacher_in(runner, checkpoint)
        if found is None:
            return
        state, prefix, teacher_state = found
        for key in teacher_state:
            state.pop(prefix + key, None)
        record.update(
            teacher_sha256=teacher_fingerprint(teacher_state),
            teacher_checkpoint=_teacher_source(runner),
            teacher_random_init=backbone.teacher_random_init,
            teacher_tensors=len(teacher_state),
            teacher_in_checkpoint=False)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Checks the built teacher against the checkpoint's; puts it in the state dict.

        On resume, also refuses a checkpoint trained with another ``transfer`` mode, or whose
        keys differ from the model's (the student, ``switch_points`` or ``stage_groups``
        changed since): torch would fail later on the optimiser's parameter groups without
        saying why.
        """
        resuming = getattr(runner, "_resume", True)
        backbone = self.find_backbone(runner.model)
        if resuming and backbone is not None:
            self._check_transfer_mode(checkpoint, backbone.transfer)
        found = self._teacher_in(runner, checkpoint)
        if found is not None:
            self._restore_teacher(runner, checkpoint, *found)
        state = checkpoint.get("state_dict")
        if resuming and backbone is not None and isinstance(state, dict):
            self._check_keys_fit(runner, state)

    @staticmethod
    def _check_transfer_mode(checkpoint: dict, transfer: str) -> None:
        trained = ((checkpoint.get("meta") or {}).get(META_KEY) or {}).get("transfer")
        if trained is not None and trained != transfer:
            raise CheckpointMismatchError(
                f"HybridKTHook: the checkpoint to resume was trained with "
                f"model.backbone.transfer={trained!r}, and this config sets {transfer!r}: its "
                "optimiser state belongs to other parameters. Resume with "
                f"transfer={trained!r}, or start a new run from these weights with "
                "load_from=<checkpoint> instead of --resume.")

    @staticmethod
    def _check_keys_fit(runner, state: dict) -> None:
        expected = set(_unwrap(runner.model).state_dict())
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
                "changed since that run? Resume with the config the run was started with (a "
                "copy is in its work dir), or start a new run from these weights with "
                "load_from=<checkpoint> instead of --resume.")

    def _restore_teacher(self, runner, checkpoint: dict, state: dict, prefix: str,
                         teacher_state: dict) -> None:
        record = dict((checkpoint.get("meta") or {}).get(META_KEY) or {})
        stored = {k[len(prefix):]: state.pop(k) for k in list(state) if k.startswith(prefix)}
        trained_with = record.get("teacher_sha256")
        if trained_with is None and stored:  # written without this hook: the teacher is inside
            trained_with = teacher_fingerprint(stored)
            record["teacher_checkpoint"] = "the checkpoint itself"
        if trained_with is not None:
            built = teacher_fingerprint(teacher_state)
            if built != trained_with:
                self._report_mismatch(runner, record, trained_with, built)
        # The teacher always comes from its own file: the load below must not replace it.
        state.update({prefix + k: v.detach().clone() for k, v in teacher_state.items()})

    @staticmethod
    def _report_mismatch(runner, record: dict, trained_with: str, built: str) -> None:
        message = (
            f"HybridKTHook: the teacher built from {_teacher_source(runner)!r} (sha256 "
            f"{built[:16]}) is not the teacher this checkpoint was trained with (sha256 "
            f"{trained_with[:16]}, from {record.get('teacher_checkpoint')!r}). The student and "
            "the adapters were fitted to that teacher's features.")
        # Resuming continues the same run (optimiser, schedule, adapters): a different teacher
        # would silently make it another experiment. Loading (load_from: fine-tuning, testing)
        # is a fresh start where another teacher may be intended; evaluation uses the student
        # path only. mmengine 0.10.7 keeps "resuming" only in Runner._resume; a runner without
        # it is treated as resuming, the strict case.
        if getattr(runner, "_resume", True) and record.get("teacher_random_init"):
            raise TeacherMismatchError(
                "HybridKTHook: this run's teacher had no checkpoint (allow_random_init=True): it "
                "is drawn anew at every build, so the run cannot be resumed with the teacher it "
                "was trained with. Train with a teacher file (model.backbone.teacher.checkpoint) "
                "to be able to resume, or start a new run.")
        if getattr(runner, "_resume", True):
            raise TeacherMismatchError(
                message + " Restore the original teacher file at "
                "model.backbone.teacher.checkpoint to resume; to start from these weights with "
                "another teacher on purpose, train with load_from=<checkpoint> instead of "
                "--resume (fresh optimiser and schedule).")
        runner.logger.warning(message + " Continuing with the teacher built from the config.")
