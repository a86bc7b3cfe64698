"""``OpenMMLabHybridBackbone``: the ``HybridBackbone`` of mmseg and mmdet, before registration.

Everything a hybrid backbone does is the core's ``TransferBackbone``: outside a training step
it returns the student path's features (inference, validation, export), during a step
(``core.TransferStep``, installed on the model's ``loss`` by ``HybridKTHook``) each path's
features in turn, so any segmentor's or detector's own neck and heads train every path. This
class adds what is OpenMMLab's: building the student and the teacher from a registry (the
``BackboneSource`` of the library that registers a subclass), and the tuple the necks expect.

State dict layout: ``engine.student.model.*`` is the plain student backbone's state dict,
``engine.teacher.model.*`` the teacher's, ``engine.to_teacher.*``/``engine.to_student.*`` the
adapters and ``transfer_loss.*`` FitNet's regressors; export keeps only the first.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from mmengine.model import BaseModule

from hybridkt_ext.core import (HybridForward, InputConvention, StagedBackbone,
                               StageMismatchError, TransferBackbone, TransferSettings,
                               aligned_stage_groups, merge_stages, transfer_mode_names)
from hybridkt_ext.core.closest_names import did_you_mean, keyword_names, refuse_unknown_keys
from hybridkt_ext.core.hybrid_forward import check_teacher_precision

from .backbone_source import BackboneSource
from .teacher_builder import build_teacher
from .teacher_on_load import keep_teacher_on_load

STUDENT_PREFIX = "engine.student.model."


class OpenMMLabHybridBackbone(TransferBackbone, BaseModule):
    """Student backbone + frozen teacher + adapters, for mmseg segmentors and mmdet detectors.

    mmseg and mmdet register a subclass named ``HybridBackbone`` that says where backbones come
    from (``backbone_source``).

    Args:
        student: the original backbone config: any chain-structured backbone of the library
            (its ``supported_types()``), e.g. ``{{_base_.model.backbone}}``.
        teacher: the teacher spec (see ``teacher_builder``), or a list of them for several
            teachers (each with its own adapters, hybrid paths and alpha; a spec's ``name``
            names its logged ``hkt_alpha/<name>``, by default its index); None only with
            transfer='none'.
        transfer: a registered transfer mode (``core.transfer_mode_names()``): 'hybrid' (the
            paper), 'none' (plain student), 'fitnet' or 'at' baselines.
        switch_points: stage indices before which hybrid paths switch (default: all).
        stage_groups: optional ``dict(student=[[0, 1], [2], ...], teacher=[...])`` merging
            stages when the two networks' stage counts differ (default: core.aligned_stage_groups).
        student_input: the convention of the images the student receives; by default the
            segmentor's data preprocessor's (see ``adopt_student_input``).
        balance: ``dict(mode='dynamic'|'fixed', fixed_alpha=1.0, sync_across_ranks=True)``,
            how the hybrid paths' losses combine (core.LossBalancer's arguments).
        **mode_options: the options of the transfer mode's loss under the mode's name:
            ``fitnet=dict(stages, weight)`` (core.FitNetLoss), ``at=dict(stages, beta, p)``
            (core.AttentionTransferLoss), or a registered mode's.
        recompute_teacher: recompute the teacher stages that run with autograd during
            backward instead of keeping their activations (less memory, one more teacher
            forward; identical losses and gradients).
        teacher_precision: ``'bf16'`` or ``'fp16'`` runs the frozen teacher's stages in that
            dtype under autocast (less time and memory on GPUs; losses agree to about 1e-2
            relative); None (default) runs them as the rest of the step.
        pretrained: what mmseg's ``EncoderDecoder`` hands its backbone from the segmentor's
            ``pretrained`` (the stock ResNet and MobileNet configs set one): it is the
            student's pretrained weights, so it is passed on to the student.
        init_cfg: must be None: the student's own config carries its init.
    """

    transfer_key = "HybridBackbone: transfer"
    wiring_hint = ("add custom_hooks=[dict(type='HybridKTHook')] to the config (it wraps the "
                   "model's loss), or call install_transfer_step(model) of the adapter.")

    @staticmethod
    def backbone_source() -> BackboneSource:
        """The registry that builds the student and unscoped teacher types, and the stage
        splitters of its backbones: the library's subclass says."""
        raise NotImplementedError("register a subclass of OpenMMLabHybridBackbone that returns "
                                  "its library's BackboneSource (for_mmseg, for_mmdet)")

    def __init__(self, student: dict, teacher: dict | None = None, transfer: str = "hybrid",
                 switch_points: Sequence[int] | None = None, stage_groups: dict | None = None,
                 student_input: dict | None = None, recompute_teacher: bool = False,
                 teacher_precision: str | None = None, balance: dict | None = None, pretrained: str | None = None,
                 init_cfg: dict | None = None, **mode_options: object) -> None:
        super().__init__(init_cfg=None)
        # A misspelled `swtich_points` would otherwise be Python's TypeError at the end of the
        # Runner's config dump, or, once accepted, an option silently not applied.
        refuse_unknown_keys(mode_options, hybrid_backbone_keys(), "HybridBackbone")
        if init_cfg is not None:
            raise ValueError("HybridBackbone: put init_cfg into `student` (and "
                             "`teacher.checkpoint`), not on HybridBackbone itself.")
        if not isinstance(recompute_teacher, bool):
            raise ValueError("HybridBackbone: recompute_teacher must be True or False, got "
                             f"{recompute_teacher!r}.")
        check_teacher_precision(teacher_precision, "HybridBackbone: teacher_precision")
        specs, names = teacher_specs(teacher)
        settings = TransferSettings.check(transfer, balance, mode_options, teacher is not None,
                                          self.transfer_key, "HybridBackbone",
                                          teacher_count=len(specs))
        if not isinstance(student, dict) or "type" not in student:
            raise ValueError("HybridBackbone: `student` must be the original backbone dict "
                             f"with a 'type', got {student!r}.")
        if pretrained is not None:
            if student.get("pretrained") is not None or student.get("init_cfg") is not None:
                raise ValueError(
                    f"HybridBackbone: the segmentor's pretrained={pretrained!r} would replace "
                    "the student's own pretrained/init_cfg; set the student's weights in one "
                    "place (model.pretrained=None, or drop them from the student).")
            student = dict(student, pretrained=pretrained)
        kind, source = student["type"], self.backbone_source()
        # Before building: VPD, say, fails inside mmseg otherwise.
        source.refuse_if_not_a_chain(kind)
        if isinstance(kind, str) and source.registry.get(kind) is None:
            hint = did_you_mean(kind, source.registry.module_dict)
            raise ValueError(f"HybridBackbone: student.type={kind!r} is not a registered "
                             f"{source.framework} backbone.{hint} Custom backbones must be "
                             "imported first (custom_imports).")
        plain = source.registry.build(student)
        # The stage producing each feature the plain student returns, in its order.
        staged, self.out_indices = source.stages(plain)
        if student_input:
            refuse_unknown_keys(student_input, keyword_names(InputConvention),
                                "HybridBackbone.student_input")
        convention = InputConvention(**dict(student_input)) if student_input else None
        if not settings.mode.needs_teacher:
            self.setup_transfer(HybridForward(staged, out_indices=self.out_indices), settings,
                                student_input_given=convention is not None)
            return
        built = [build_teacher(spec, source) for spec in specs]
        # No checkpoint: a random teacher, allowed for smoke runs only; the hook logs it and
        # every checkpoint's meta records it.
        self.teacher_random_init = any(spec.get("checkpoint") is None for spec in specs)
        # The --cfg-options key of each random teacher, for the hook's warning: a list's
        # teachers are set by index (teacher.<k>.checkpoint), a single spec as teacher.checkpoint.
        listed = isinstance(teacher, (list, tuple))
        self.random_teachers = {
            name: f"model.backbone.teacher{f'.{k}' if listed else ''}"
            for k, (spec, name) in enumerate(zip(specs, names)) if spec.get("checkpoint") is None}
        paired = [_pair_stages(staged, t, self.out_indices, stage_groups) for t, _ in built]
        _same_student_stages(paired, names)
        teachers = [t for _, t, _, _ in paired]
        conventions = [c for _, c in built]
        for t in teachers:
            keep_teacher_on_load(t)  # checkpoints hold no teacher: no missing keys
        several = len(teachers) > 1
        engine = HybridForward(
            paired[0][0], teachers if several else teachers[0], switch_points=switch_points,
            out_indices=paired[0][2], student_input=convention,
            teacher_input=conventions if several else conventions[0],
            teacher_names=names if several else None,
            hybrid_paths=settings.mode.hybrid_paths, recompute_teacher=recompute_teacher,
            teacher_precision=teacher_precision)
        self.setup_transfer(engine, settings, conventions if several else conventions[0],
                            convention is not None)

    def init_weights(self) -> None:
        # Only the student is initialised: the teacher holds its checkpoint (mmengine's
        # recursive init would otherwise re-initialise it), adapters keep torch's default.
        if hasattr(self.student, "init_weights"):
            self.student.init_weights()
        self._is_init = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(N, 3, H, W) -> the features the plain student backbone returns, as a tuple.

        Outside a training step these are the student path's (inference, validation); during
        ``TransferStep.run`` the active path's (``TransferBackbone.transfer_features``).
        """
        return tuple(self.transfer_features(x))


def hybrid_backbone_keys() -> list[str]:
    """The keys a ``HybridBackbone`` config dict may have: its constructor's, ``type``, and the
    registered transfer modes' names (their loss options)."""
    return keyword_names(OpenMMLabHybridBackbone.__init__) + ["type", *transfer_mode_names()]


def check_hybrid_backbone_keys(config: Any) -> None:
    """Refuses unknown keys of every ``HybridBackbone`` dict in a config, before building.

    The tools call it before the Runner logs the environment and the whole config, so the one
    line that matters is not the last of hundreds.
    """
    if isinstance(config, Mapping):
        if config.get("type") == "HybridBackbone":
            refuse_unknown_keys(config, hybrid_backbone_keys(), "HybridBackbone")
        for value in config.values():
            check_hybrid_backbone_keys(value)
    elif isinstance(config, (list, tuple)):
        for value in config:
            check_hybrid_backbone_keys(value)


def teacher_specs(teacher: object) -> tuple[list[dict], tuple[str, ...]]:
    """The teacher spec(s) of a config, each without its ``name``, and the teachers' names.

    Raises:
        ValueError: an empty list, a spec that is not a dict, or names repeated.
    """
    if teacher is None:
        return [], ()
    listed = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not listed:
        raise ValueError("HybridBackbone: teacher=[] lists no teacher; give one spec or more, "
                         "or transfer='none' without a teacher.")
    specs, names = [], []
    for k, spec in enumerate(listed):
        if not isinstance(spec, dict):
            raise ValueError(f"HybridBackbone: teacher[{k}] must be a dict (config or backbone, "
                             f"plus checkpoint), got {spec!r}.")
        spec = dict(spec)
        names.append(str(spec.pop("name", k)))
        specs.append(spec)
    if len(set(names)) != len(names):
        raise ValueError(f"HybridBackbone: the teachers' names {names} repeat one; each names "
                         "its logged hkt_alpha/<name>.")
    return specs, tuple(names)


def _same_student_stages(paired: list, names: Sequence[str]) -> None:
    """Several teachers must split the student at the same stages (one student, one plan)."""
    first = paired[0][3]
    for (_, _, _, groups), name in zip(paired[1:], names[1:]):
        if groups != first:
            raise StageMismatchError(
                f"teacher {names[0]!r} merges the student's stages as {first}, teacher {name!r} "
                f"as {groups}: one student needs one set of stages for all its teachers. Give "
                "teachers whose downsampling stages match, or pass stage_groups=dict(student="
                "..., teacher=...) that fits both.")


def _pair_stages(student: StagedBackbone, teacher: StagedBackbone, out_indices: Sequence[int],
                 stage_groups: dict | None
                 ) -> tuple[StagedBackbone, StagedBackbone, list[int], list[list[int]]]:
    """Merges stages so the counts match; maps the student's out_indices onto merged stages.

    Returns the merged student and teacher, the merged out_indices and the student's groups."""
    n_student = student.num_stages
    if stage_groups is not None:
        unknown = set(stage_groups) - {"student", "teacher"}
        if unknown:
            raise ValueError(f"stage_groups keys must be 'student'/'teacher', got {unknown}.")
        groups = stage_groups.get("student") or [[i] for i in range(n_student)]
        student = merge_stages(student, groups)
        teacher = merge_stages(teacher, stage_groups.get("teacher")
                               or [[i] for i in range(teacher.num_stages)])
    else:
        groups, teacher_groups = aligned_stage_groups(student, teacher)
        student = merge_stages(student, groups)
        teacher = merge_stages(teacher, teacher_groups)
    if student.num_stages != teacher.num_stages:
        raise StageMismatchError(
            f"stage_groups give the student {student.num_stages} stages and the teacher "
            f"{teacher.num_stages}; give both the same number of groups.")
    ends = {g[-1]: k for k, g in enumerate(groups)}
    inside = [i for i in out_indices if i not in ends]
    if inside:
        raise StageMismatchError(
            f"the student's out_indices {tuple(out_indices)} include {inside}, which fall inside "
            f"merged stages {groups}; hybrid paths only produce features where both networks "
            "switch. Pass HybridBackbone(stage_groups=dict(student=..., teacher=...)) so each "
            "out index ends a group.")
    return student, teacher, [ends[i] for i in out_indices], [list(g) for g in groups]
