"""``TransferBackbone``: what every framework's hybrid backbone is, whatever it returns.

The mmseg/mmdet ``HybridBackbone`` and detectron2's ``HybridBottomUp`` differ only in their base
class and in how they lay out features (a tuple, a dict by stage name). Everything else lives
here, so the adapters cannot drift apart: the transfer mode and its checks, the balancer, the
mimicking loss, the ``TransferStep``, the forward dispatch and the pixel convention the teacher
input transform starts from.

A framework's backbone subclasses it beside its own base class
(``class HybridBackbone(TransferBackbone, BaseModule)``), checks the user's settings with
``TransferSettings.check`` before building anything expensive, builds the engine with
``settings.mode``, calls ``setup_transfer`` and returns ``transfer_features(x)`` from its forward.

State dict: ``engine.student.model.*`` is the plain student's state dict, ``engine.teacher.*``
the teacher's, ``engine.to_teacher.*`` / ``engine.to_student.*`` the feature adapters and
``transfer_loss.*`` a mimicking loss's parameters (FitNet's regressors).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from .balance import LossBalancer
from .closest_names import refuse_unknown_keys
from .errors import HybridTrainingError
from .hybrid_forward import HybridFeatures, HybridForward
from .input_transform import InputConvention
from .stages import StagedBackbone
from .transfer_modes import TransferMode, mode_options, transfer_mode
from .transfer_step import TransferStep, build_balancer


@dataclass(frozen=True)
class TransferSettings:
    """A transfer mode with its balance and loss options, checked before anything is built.

    Attributes:
        mode: the registered mode.
        balancer: combines the path losses.
        options: the options of the mode's mimicking loss (empty for the others).
    """

    mode: TransferMode
    balancer: LossBalancer
    options: dict

    @classmethod
    def check(cls, transfer: object, balance: Mapping | None = None,
              options_by_mode: Mapping[str, Any] | None = None, teacher_given: bool = True,
              where: str = "transfer", owner: str = "", teacher_count: int = 1
              ) -> "TransferSettings":
        """Checks what a config asks for, before the student or the teacher is built.

        Args:
            transfer: the mode's name, as the config writes it.
            balance: ``dict(mode='dynamic'|'fixed', fixed_alpha=..., sync_across_ranks=...)``.
            options_by_mode: loss options keyed by mode name (``{'fitnet': dict(weight=2)}``).
            teacher_given: whether the config names a teacher.
            where: the config key of ``transfer``, as messages start (``HybridBackbone:
                transfer``, ``MODEL.HYBRIDKT.TRANSFER``).
            owner: what holds the balance and the options, in messages (``HybridBackbone``,
                ``MODEL.HYBRIDKT``).
            teacher_count: how many teachers the config lists (several need a hybrid mode).

        Raises:
            ValueError: an unknown mode, balance setting or option; options of another mode
                than ``transfer`` (ignored otherwise); a mode that needs a teacher without one;
                several teachers with a mode that is not hybrid.
        """
        mode = transfer_mode(transfer, where)
        owner = owner or where
        if mode.needs_teacher and not teacher_given:
            raise ValueError(f"{where}={mode.name!r} needs a teacher; use 'none' to train the "
                             "student alone.")
        if teacher_count > 1 and not mode.hybrid_paths:
            raise ValueError(
                f"{where}={mode.name!r} takes one teacher, and the config lists {teacher_count}: "
                "several teachers train through hybrid paths (transfer='hybrid' or "
                "'hybrid_alternate'). List one teacher, or set one of those modes.")
        balancer = build_balancer(mode.name, balance, f"{owner} balance")
        options = mode_options(dict(options_by_mode or {}), mode, owner)
        refuse_unknown_keys(options, mode.options, f"{owner} {mode.name}")
        return cls(mode, balancer, options)


class TransferBackbone(nn.Module):
    """A student backbone and its frozen teacher in the core engine, in one transfer mode.

    Class attributes a framework's subclass sets:
        transfer_key: the config key of the mode, named in messages.
        wiring_hint: what trains through the transfer step in that framework.
    """

    transfer_key = "transfer"
    wiring_hint = "call install_transfer_step(model) of the framework's adapter first."
    engine: HybridForward

    def setup_transfer(self, engine: HybridForward, settings: TransferSettings,
                       teacher_input: InputConvention | None = None,
                       student_input_given: bool = False) -> None:
        """Takes the engine and the step of ``settings``; call once, from ``__init__``.

        Args:
            engine: the core engine over the student (and the teacher, for a mode that has one),
                built with ``hybrid_paths=settings.mode.hybrid_paths``.
            settings: what ``TransferSettings.check`` returned.
            teacher_input: the teacher's own pixel convention (None: the student's).
            student_input_given: the config fixed the student's convention; the framework's
                data preprocessor is then not adopted.
        """
        if engine.plan is None and settings.mode.hybrid_paths:
            raise ValueError(f"transfer={settings.mode.name!r} runs hybrid paths: build the "
                             "engine with its teacher and hybrid_paths=True.")
        self.engine = engine
        self.transfer = settings.mode.name
        # Registered here (state dict: transfer_loss.*): FitNet's regressors train.
        self.transfer_loss = settings.mode.loss(engine, settings.options, self.transfer_key)
        self.transfer_step = TransferStep(engine, settings.mode.name, settings.balancer,
                                          self.transfer_loss)
        self._teacher_input = teacher_input
        self._student_input_given = student_input_given
        if not hasattr(self, "teacher_random_init"):
            self.teacher_random_init = False  # no checkpoint: the adapter that knows sets it

    @property
    def student(self) -> nn.Module:
        """The plain student backbone (its state dict is ``engine.student.model.*``)."""
        return self.engine.student.model

    @property
    def teacher(self) -> StagedBackbone | None:
        """The frozen teacher's stages, or None for a mode without a teacher."""
        return self.engine.teacher

    def transfer_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) -> the student's features at the engine's out_indices.

        During ``TransferStep.run`` these are the active path's features (student channels),
        so the framework's own neck and heads compute each path's loss. Outside a step they
        are the plain student's own forward (``plain_student_features``): inference,
        validation and export are the plain student, bit for bit, at no extra cost.

        Raises:
            HybridTrainingError: a training forward with a teacher outside the transfer step
                (it would train the student alone, silently).
        """
        if self.transfer_step.running:
            return self.transfer_step.features(x)
        if self.training and torch.is_grad_enabled() and self.engine.teacher is not None:
            raise HybridTrainingError(
                f"the hybrid backbone ({self.transfer_key}={self.transfer!r}) was called for "
                "training outside its transfer step, which would train the student alone: "
                + self.wiring_hint)
        return self.plain_student_features(x)

    def plain_student_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The plain student's forward, as the engine's out_indices list (the framework's
        subclass maps its student's output; by default the student returns that list)."""
        return list(self.student(x))

    def forward_hybrid(self, x: torch.Tensor) -> HybridFeatures:
        """The three paths' features at the student's out_indices (student channel counts)."""
        return self.engine.forward_hybrid(x)

    def adopt_student_input(self, convention: InputConvention) -> None:
        """The framework's pixel convention (its data preprocessor's, or the meta-architecture's
        PIXEL_MEAN/PIXEL_STD/INPUT.FORMAT) as the student's, unless the config fixed one.

        The teacher input transform maps what the student receives to what the teacher was
        trained on; only the framework's model knows the former.
        """
        if self._student_input_given or self.engine.teacher is None:
            return
        # A teacher without a convention of its own was trained on what the student receives.
        self.engine.adopt_student_input(convention, self._teacher_input)
