"""``HybridKTHook``: the one hook a converted OpenMMLab config adds.

Before the run it makes any model whose backbone is a ``HybridBackbone`` train through the
transfer step (``transfer_wiring``): that, the backbone swap and this hook are the whole
conversion of a config, whatever the segmentor (EncoderDecoder, CascadeEncoderDecoder, ...) or
detector. It then does what the loss dict cannot, each job in its own component:

* the teacher is frozen before training and unchanged after it (``core.TeacherGuard``);
* the teacher is kept out of checkpoints and checked when one is loaded
  (``teacher_in_checkpoints``), and out of an ``EMAHook``'s averaged model
  (``teacher_in_ema``);
* every step's alpha and path losses are kept for the plot, and the last iteration is logged
  whatever LoggerHook's interval (``path_loss_log``).

It is registered in mmengine's root HOOKS registry, which mmseg's and mmdet's registries search
too, so ``custom_hooks=[dict(type='HybridKTHook')]`` works in both.
"""
from __future__ import annotations

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from hybridkt_ext.core import HybridTrainingError, TeacherGuard, UnsupportedBackboneError

from .lost_base_hooks import hooks_lost_from_base
from .path_loss_log import PathLossLog
from .teacher_in_checkpoints import (check_resumable, drop_teacher, find_backbone,
                                     restore_teacher, unwrap)
from .teacher_in_ema import exclude_teacher_from_ema
from .transfer_wiring import install_transfer_step

# Models that have no backbone for HybridBackbone to take the place of, and why.
MODELS_WITHOUT_A_BACKBONE = {
    "MultimodalEncoderDecoder": "its CLIP image encoder feeds the decode head intermediate "
                                "layers together with text embeddings (SAN), not through a "
                                "`backbone`",
    "DepthEstimator": "it estimates depth with VPD's diffusion UNet, which is not one chain of "
                      "stages",
}


@HOOKS.register_module()
class HybridKTHook(Hook):
    """Wires the model to the transfer step, guards the teacher, and keeps it out of
    checkpoints (see the module doc).

    Args:
        require_hybrid: fail if the model has no HybridBackbone (catches a config whose
            backbone override did not apply).
        verify_teacher_unchanged: compare the teacher's tensors (SHA-256 each) after training
            with those before it.
    """

    priority = "VERY_HIGH"  # before LoggerHook: the last iteration's log is arranged here

    def __init__(self, require_hybrid: bool = True, verify_teacher_unchanged: bool = True) -> None:
        if not isinstance(require_hybrid, bool) or not isinstance(verify_teacher_unchanged, bool):
            raise ValueError("HybridKTHook: require_hybrid and verify_teacher_unchanged must be "
                             "True or False.")
        self.require_hybrid = require_hybrid
        self.verify_teacher_unchanged = verify_teacher_unchanged
        self._guard: TeacherGuard | None = None
        self._log = PathLossLog()

    find_backbone = staticmethod(find_backbone)

    def before_run(self, runner) -> None:
        # Any model with a HybridBackbone: its own loss runs the transfer mode's paths.
        install_transfer_step(unwrap(runner.model))
        lost = hooks_lost_from_base(getattr(runner, "cfg", None))
        if lost:
            runner.logger.warning(
                f"HybridKTHook: this config's custom_hooks drop {', '.join(lost)} of its _base_ "
                "(a list under _base_ replaces the base's list), which changes the recipe. "
                "Keep them: custom_hooks = [*_base_.custom_hooks, dict(type='HybridKTHook')].")

    def before_train(self, runner) -> None:
        # EMAHook built its averaged copy in before_run, after this hook's (VERY_HIGH) one.
        exclude_teacher_from_ema(runner)
        backbone = find_backbone(runner.model)
        if backbone is None:
            if self.require_hybrid:
                kind = type(unwrap(runner.model)).__name__
                if kind in MODELS_WITHOUT_A_BACKBONE:
                    raise UnsupportedBackboneError(
                        f"HybridKTHook: {kind} cannot train with hybrid forward: "
                        f"{MODELS_WITHOUT_A_BACKBONE[kind]}. Segmentors that do: "
                        "EncoderDecoder, CascadeEncoderDecoder (and their subclasses).")
                raise HybridTrainingError(
                    "HybridKTHook: the model has no HybridBackbone; set "
                    "model.backbone=dict(type='HybridBackbone', student=..., teacher=...) or "
                    "remove the hook.")
            return
        if backbone.teacher is None:
            return
        self._guard = TeacherGuard(backbone.teacher, "HybridKTHook")
        self._guard.before_training()
        engine = backbone.engine
        several = engine.num_teachers > 1
        self._log.teacher_names = engine.teacher_names if several else ()
        for name, teacher in zip(engine.teacher_names, engine.teachers):
            runner.logger.info(
                f"HybridKTHook: transfer={backbone.transfer}, teacher "
                f"{f'{name!r} ' if several else ''}{type(teacher.model).__name__} frozen, stages "
                + ", ".join(f"{s.name}(C={s.channels},/{s.reduction})"
                            for s in teacher.stage_specs))
        plan = engine.plan
        if plan is not None and several:
            runner.logger.info(
                f"HybridKTHook: per teacher <name> ({', '.join(engine.teacher_names)}), hkt_L1/"
                f"<name> = its student-first path ({' '.join(plan.student_first)}), hkt_L2/<name> "
                f"= its teacher-first path ({' '.join(plan.teacher_first)}); hkt_L3 = student "
                "path; the optimised loss_hkt = sum over teachers of hkt_alpha/<name> * "
                "(hkt_L1/<name> + hkt_L2/<name>) / (teachers in the step) + hkt_L3.")
        elif plan is not None:  # the names the logged scalars stand for
            runner.logger.info(
                f"HybridKTHook: hkt_L1 = student-first path ({' '.join(plan.student_first)}), "
                f"hkt_L2 = teacher-first path ({' '.join(plan.teacher_first)}), hkt_L3 = "
                "student path (its head losses: hkt_L3.<head>.<loss>); the optimised loss_hkt "
                "= hkt_alpha * (hkt_L1 + hkt_L2) + hkt_L3.")
        if backbone.teacher_random_init:
            # Name the option of each random teacher: with a list, teacher.checkpoint is no key.
            random = backbone.random_teachers
            which = (f"teacher{'s' if len(random) > 1 else ''} "
                     f"{', '.join(repr(n) for n in random)} {'are' if len(random) > 1 else 'is'}"
                     if several else "teacher is")
            runner.logger.warning(
                f"HybridKTHook: the {which} randomly initialised (allow_random_init=True, no "
                "checkpoint): it transfers no knowledge. Fine for a smoke run only; set "
                + ", ".join(f"{k}.checkpoint" for k in random.values())
                + " to a trained teacher.")

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._log.record(runner) and runner.iter + 1 == runner.max_iters:
            self._log.log_the_last_iteration(runner, batch_idx)

    def after_train(self, runner) -> None:
        self._log.restore_interval()
        if is_main_process():
            path = self._log.plot(runner.work_dir)
            if path is not None:
                runner.logger.info(f"HybridKTHook: alpha and the path losses plotted to {path}")
        if self._guard is not None and self.verify_teacher_unchanged:
            self._guard.after_training()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Drops the teacher's tensors; records the transfer mode, the teacher's fingerprint
        and its file in the meta."""
        drop_teacher(runner, checkpoint)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Checks the built teacher against the checkpoint's and puts it in the state dict; on
        resume, refuses a checkpoint of another transfer mode or model layout."""
        # Runner.load_or_resume comes before before_train: the EMA model must be ready now.
        exclude_teacher_from_ema(runner)
        restore_teacher(runner, checkpoint)
        check_resumable(runner, checkpoint)
