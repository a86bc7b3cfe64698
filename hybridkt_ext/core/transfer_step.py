"""One training step of a transfer mode, through a framework's own training forward.

Every framework's training forward calls its backbone once and its heads once per call: mmseg's
``EncoderDecoder.loss`` and ``CascadeEncoderDecoder.loss``, mmdet's detectors, detectron2's
meta-architectures. Running that forward once per path, with the hybrid backbone yielding that
path's features from one cached ``forward_hybrid``, gives each path's loss dict from the
architecture's own necks and heads, for any architecture and without a subclass of any. The
three loss dicts are reduced to scalars by the framework's own rule and balanced here.

Framework adapters need two things: their hybrid backbone returns ``TransferStep.features(x)``
while a step runs, and their training forward is wrapped to call ``TransferStep.run``.

The modes themselves are registered in ``transfer_modes``: whether the three paths run, and a
feature-mimicking baseline's loss. ``hkt_L3`` is always the task loss of the student path; a
mimicking loss is added to the total and logged on its own as ``hkt_transfer``.

Several teachers: every teacher's two paths run before the student path (or, with
``balance=dict(teachers='sample')``, one teacher's per step, in turn), and each is balanced on
its own (``LossBalancer.teachers``); the logs then hold ``hkt_alpha/<name>``, ``hkt_L1/<name>``
and ``hkt_L2/<name>`` per teacher, ``hkt_L3``, and with sampling ``hkt_teacher`` (its index).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .balance import LossBalancer
from .hybrid_forward import HybridForward
from .paths import HYBRID_PATHS, hybrid_path_name
from .norm_stats import RunningStatsGuard
from .stages import feature_map
from .transfer_modes import transfer_mode

_BALANCE_KEYS = ("mode", "fixed_alpha", "sync_across_ranks", "teachers")


def alternate_path(step: int) -> str:
    """The hybrid path an alternating mode runs at ``step``: student-first on even steps.

    A function of the iteration alone, so every rank runs the same path and a resumed run
    continues the sequence.
    """
    return "student_first" if step % 2 == 0 else "teacher_first"


def step_paths(engine: HybridForward, alternate: bool, sample_teachers: bool, step: int
               ) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The paths a hybrid step runs and the teachers they go through.

    The student path runs last, so what the heads log themselves during a step describes it.

    With ``sample_teachers`` teacher ``step % K`` runs; an alternating mode then takes its
    path from ``step // K``, so every teacher gets both of its paths in turn.
    """
    count = engine.num_teachers
    teachers = (step % count,) if sample_teachers and count > 1 else tuple(range(count))
    turn = step // count if sample_teachers and count > 1 else step
    kinds = (alternate_path(turn),) if alternate else HYBRID_PATHS
    return tuple(hybrid_path_name(kind, k) for k in teachers for kind in kinds) + ("student",), \
        teachers


def build_balancer(mode: str, balance: Mapping | None, where: str = "balance") -> LossBalancer:
    """``LossBalancer`` for ``balance=dict(mode='dynamic'|'fixed', fixed_alpha, ...)``.

    Modes without hybrid paths balance nothing: the student path's loss is the total.
    """
    hybrid = transfer_mode(mode).hybrid_paths
    balance = dict(balance or {})
    unknown = sorted(set(balance) - set(_BALANCE_KEYS))
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; allowed: {_BALANCE_KEYS} "
                         "(e.g. dict(mode='fixed', fixed_alpha=0.5)).")
    balance_mode = balance.pop("mode", "dynamic")
    if balance_mode not in ("dynamic", "fixed"):
        raise ValueError(f"{where}.mode={balance_mode!r} must be 'dynamic' or 'fixed'; for "
                         "student-only training set the backbone's transfer='none'.")
    if "fixed_alpha" in balance and (balance_mode != "fixed" or not hybrid):
        ignored_by = f"mode={balance_mode!r}" if hybrid else f"transfer={mode!r}"
        raise ValueError(f"{where}.fixed_alpha={balance['fixed_alpha']!r} would be ignored by "
                         f"{ignored_by}: it weighs the hybrid paths only with transfer='hybrid' "
                         f"and {where}=dict(mode='fixed', fixed_alpha=...). Set that mode or "
                         "drop fixed_alpha.")
    return LossBalancer(balance_mode if hybrid else "student_only", **balance)


@dataclass(frozen=True)
class StepResult:
    """What a step gives the framework.

    Attributes:
        total: the loss to back-propagate.
        log_values: detached scalars for the logs (``hkt_alpha``, ``hkt_L1``..``hkt_L3``, and
            ``hkt_transfer`` for a mimicking baseline); no key contains "loss".
        student_losses: the loss dict of the student path, as the framework returned it.
    """

    total: torch.Tensor
    log_values: dict[str, torch.Tensor]
    student_losses: Mapping[str, Any]


class TransferStep:
    """A hybrid backbone's transfer mode, and one training step of it.

    Args:
        engine: the core engine of the backbone.
        mode: a registered transfer mode's name (``transfer_modes``).
        balancer: combines the path losses (see ``build_balancer``).
        transfer_loss: the mode's mimicking loss, for a mode that has one
            (``TransferMode.loss``).
    """

    def __init__(self, engine: HybridForward, mode: str, balancer: LossBalancer,
                 transfer_loss: nn.Module | None = None) -> None:
        self._mode = transfer_mode(mode)
        self.mode = mode
        if (self._mode.build_loss is None) != (transfer_loss is None):
            raise ValueError(f"transfer={mode!r} takes {'a' if transfer_loss is None else 'no'} "
                             "mimicking loss (TransferMode.loss builds it).")
        self._engine = (engine,)  # not registered anywhere through this object
        self._transfer_loss = (transfer_loss,)
        self.balancer = balancer
        # Read once: how many teachers' paths a step runs is the balance's setting.
        self._sample_teachers = balancer.teachers_per_step == "sample"
        self.active: str | None = None
        self._cache: Any = None
        self._input_shape: tuple[int, ...] | None = None
        self._mimic: torch.Tensor | None = None
        self._paths: tuple[str, ...] = ()
        self._num_runs = 0  # the step of an alternating mode when the framework passes none

    @property
    def running(self) -> bool:
        """Whether a step is running: the backbone must then return ``features(x)``."""
        return self.active is not None

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The active path's head features; computed once per step from the first call.

        Raises:
            RuntimeError: called outside a step, or with another input than the first call
                (an architecture calling its backbone on two inputs cannot take hybrid paths).
        """
        if self.active is None:
            raise RuntimeError("TransferStep.features called outside TransferStep.run")
        engine = self._engine[0]
        if self._cache is None:
            self._input_shape = tuple(x.shape)
            if self._mode.hybrid_paths:
                self._cache = engine.forward_hybrid(x, self._paths)
            elif self._transfer_loss[0] is None:
                self._cache = engine(x)
            else:
                student_out, teacher_out = engine.forward_with_teacher(x)
                self._mimic = self._transfer_loss[0](
                    [feature_map(s) for s in student_out], teacher_out)
                self._cache = engine.head_features(student_out)
        elif tuple(x.shape) != self._input_shape:
            raise RuntimeError(
                f"the training forward called the hybrid backbone on {tuple(x.shape)} after "
                f"{self._input_shape} in one step; hybrid training needs an architecture that "
                "runs its backbone once per training forward.")
        return self._cache.path(self.active) if self._mode.hybrid_paths else self._cache

    def run(self, forward: Callable[[], Mapping[str, Any]],
            reduce: Callable[[Mapping[str, Any]], torch.Tensor],
            guard: RunningStatsGuard | None = None, step: int | None = None) -> StepResult:
        """Runs ``forward`` once per path of the mode and balances the reduced losses.

        Args:
            forward: the framework's own training forward on the current batch, returning its
                loss dict; it calls the hybrid backbone, which yields the active path.
            reduce: the framework's rule from a loss dict to the scalar it would optimise.
            guard: freezes the running statistics of norm layers outside the student backbone
                (necks, heads) on the hybrid paths, so they come from the student path only.
            step: the iteration, named in errors.

        Raises:
            NonFiniteLossError: a path loss is not finite (before anything is returned).
            RuntimeError: ``forward`` did not call the hybrid backbone.
        """
        index = self._num_runs if step is None else step
        self._num_runs += 1
        engine = self._engine[0]
        teachers: tuple[int, ...] = ()
        if self._mode.hybrid_paths:
            paths, teachers = step_paths(engine, self._mode.alternate, self._sample_teachers,
                                         index)
        else:
            paths = ("student",)
        self._paths = paths
        losses: dict[str, Mapping[str, Any]] = {}
        try:
            for name in paths:
                self.active = name
                frozen = guard.frozen() if guard is not None and name != "student" \
                    else contextlib.nullcontext()
                with frozen:
                    losses[name] = forward()
                if self._cache is None:
                    raise RuntimeError(
                        "the training forward never called the hybrid backbone; its backbone "
                        "(or the bottom-up of its FPN) must be the hybrid one.")
            mimic = self._mimic
        finally:
            self.active, self._cache, self._mimic = None, None, None
        l3 = reduce(losses["student"])
        if engine.num_teachers > 1 and self._mode.hybrid_paths:
            return self._several_teachers(losses, reduce, l3, teachers, step)
        if self._mode.alternate:
            balanced = self.balancer.one_path(reduce(losses[paths[0]]), l3, paths[0], step=step)
        elif self._mode.hybrid_paths:
            balanced = self.balancer(reduce(losses["student_first"]),
                                     reduce(losses["teacher_first"]), l3, step=step)
        else:
            balanced = self.balancer(None, None, l3, step=step)
        log_values = balanced.log_values()
        if not self._mode.hybrid_paths:
            del log_values["hkt_alpha"]  # nothing is balanced: an alpha would mean nothing
        total = balanced.total
        if mimic is not None:  # the baselines add their mimicking loss to the task loss
            total = total + mimic
            log_values["hkt_transfer"] = mimic.detach()
        return StepResult(total, log_values, losses["student"])

    def _several_teachers(self, losses: Mapping[str, Mapping[str, Any]],
                          reduce: Callable[[Mapping[str, Any]], torch.Tensor], l3: torch.Tensor,
                          teachers: tuple[int, ...], step: int | None) -> StepResult:
        """One balance per teacher that ran (``LossBalancer.teachers``), logged by name."""
        names = self._engine[0].teacher_names
        pairs = [tuple(reduce(losses[hybrid_path_name(kind, k)])
                       if hybrid_path_name(kind, k) in losses else None for kind in HYBRID_PATHS)
                 for k in teachers]
        total, balanced = self.balancer.teachers(pairs, l3, [names[k] for k in teachers],
                                                 step=step)
        log_values = {"hkt_L3": balanced[0].l3}
        for k, b in zip(teachers, balanced):
            log_values[f"hkt_alpha/{names[k]}"] = b.alpha
            for key, value in (("hkt_L1", b.l1), ("hkt_L2", b.l2)):
                if value is not None:
                    log_values[f"{key}/{names[k]}"] = value
        if self._mode.alternate:  # which hybrid path ran, as with one teacher
            log_values["hkt_path"] = torch.tensor(1.0 if balanced[0].l1 is not None else 2.0,
                                                  device=l3.device)
        if len(teachers) == 1:  # one teacher sampled: its index (the others' values are stale)
            log_values["hkt_teacher"] = torch.tensor(float(teachers[0]), device=l3.device)
        return StepResult(total, log_values, losses["student"])
