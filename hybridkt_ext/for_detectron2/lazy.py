"""``hybrid_bottom_up``: the hybrid bottom-up in a detectron2 LazyConfig, in a few lines.

detectron2's current baselines are LazyConfig ``.py`` files whose FPN reads its bottom-up from
``model.backbone.bottom_up``. Converting one means wrapping that bottom-up::

    from detectron2.config import LazyCall as L
    from hybridkt_ext.for_detectron2.lazy import hybrid_bottom_up

    model.backbone.bottom_up = L(hybrid_bottom_up)(
        student=model.backbone.bottom_up,     # the config's own bottom-up, untouched
        teacher=dict(config="COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml",
                     weights="checkpoints/faster_rcnn_R_50_FPN_3x.pkl"),
        out_features="${.student.out_features}")  # what the FPN's in_features point at

ViTDet's ``SimpleFeaturePyramid`` reads a plain ViT from ``model.backbone.net``; the same call
wraps it, with ``out_feature="${.student.out_feature}"`` so that the pyramid's
``in_feature="${.net.out_feature}"`` still resolves::

    model.backbone.net = L(hybrid_bottom_up)(
        student=model.backbone.net, teacher=dict(...), out_feature="${.student.out_feature}")

The teacher keys are those of ``MODEL.HYBRIDKT.TEACHER`` in lower case (``config``,
``framework``, ``arch``, ``weights``, ``weights_prefix``, ``weights_remap``, ``weights_strict``,
``allow_random_init``, ``pixel_mean``, ``pixel_std``, ``input_format``), built by the same code.
The student's pixel convention is the meta-architecture's (``model.pixel_mean`` ...), adopted
when ``install_transfer_step`` wires the model.

Several teachers (``MODEL.HYBRIDKT.TEACHERS``) are a list of such dicts, each with an optional
``name`` (its logged ``hkt_alpha/<name>``); ``balance=dict(teachers='sample')`` runs one of them
per step::

    teacher=[dict(framework="torchvision", arch="resnet18", weights=..., name="tv"),
             dict(framework="detectron2", arch="resnet18", weights=..., name="d2")]
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from detectron2.config import get_cfg
from detectron2.modeling import Backbone

from ..core import TransferSettings, transfer_mode_names
from ..core.closest_names import did_you_mean, keyword_names, refuse_unknown_keys
from .config import add_hybridkt_config
from .hybrid_backbone import HybridBottomUp, build_hybrid_engine
from .stage_split import SUPPORTED_BOTTOM_UPS, split_bottom_up
from .teacher import teacher_input_conventions


def hybrid_bottom_up(student: Backbone,
                     teacher: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
                     transfer: str = "hybrid", balance: Mapping[str, Any] | None = None,
                     switch_points: Sequence[int] = (), recompute_teacher: bool = False,
                     teacher_precision: str | None = None,
                     out_features: Sequence[str] | None = None,
                     out_feature: str | None = None,
                     trust_checkpoints: bool = False,
                     **mode_options: Mapping[str, Any] | None) -> HybridBottomUp:
    """The student bottom-up with a frozen teacher, as the FPN's bottom-up.

    Args:
        student: the built bottom-up (LazyConfig instantiates the config's own first).
        teacher: ``MODEL.HYBRIDKT.TEACHER`` keys in lower case; a list of such dicts, each with
            an optional ``name``, for several teachers (``MODEL.HYBRIDKT.TEACHERS``); None only
            with transfer 'none'.
        transfer: a registered transfer mode: 'hybrid', 'none', 'fitnet' or 'at' (several
            teachers: a hybrid mode).
        balance: ``dict(mode='dynamic'|'fixed', fixed_alpha=..., teachers='all'|'sample')``.
        switch_points, recompute_teacher, teacher_precision: as
            ``MODEL.HYBRIDKT.SWITCH_POINTS`` / ``RECOMPUTE_TEACHER`` / ``TEACHER_PRECISION``.
        out_features: the student stages the FPN reads (default: the student's own).
        out_feature: ViTDet's one feature, ``"${.student.out_feature}"``: the field that
            ``SimpleFeaturePyramid``'s ``in_feature="${.net.out_feature}"`` reads once
            ``backbone.net`` is this call; it must be one of the features.
        trust_checkpoints: unpickle any class in the teacher file (trusted files only).
        **mode_options: the transfer mode's loss options under its name:
            ``fitnet=dict(stages, weight)``, ``at=dict(stages, beta, p)``.

    Raises:
        ValueError: an unknown teacher key, transfer mode or balance setting, or a student
            that cannot be split into stages.
    """
    cfg = get_cfg()
    add_hybridkt_config(cfg)
    hk = cfg.MODEL.HYBRIDKT
    refuse_unknown_keys(mode_options, hybrid_bottom_up_keywords(), "hybrid_bottom_up")
    listed = _teacher_list(teacher)
    settings = TransferSettings.check(transfer, balance, mode_options, teacher is not None,
                                      "hybrid_bottom_up: transfer", "hybrid_bottom_up",
                                      teacher_count=len(listed) if listed is not None else 1)
    if listed is None:
        check_teacher_keys(teacher or {})
        for key, value in dict(teacher or {}).items():
            hk.TEACHER[key.upper()] = _plain(value)
    else:  # MODEL.HYBRIDKT.TEACHERS, read (and its values checked) by teacher_entries
        for k, item in enumerate(listed):
            check_teacher_keys(item, f"hybrid_bottom_up: teacher[{k}]", extra=("name",))
        hk.TEACHERS = [{key.upper(): _plain(value) for key, value in item.items()}
                       for item in listed]
    hk.TRANSFER, hk.SWITCH_POINTS = transfer, list(switch_points)
    hk.RECOMPUTE_TEACHER, hk.TRUST_CHECKPOINTS = recompute_teacher, trust_checkpoints
    hk.TEACHER_PRECISION = teacher_precision or ""
    features = list(out_features or student.output_shape())
    if out_feature is not None and out_feature not in features:
        raise ValueError(f"hybrid_bottom_up: out_feature={out_feature!r} is not among the "
                         f"student's features {features}; set out_feature="
                         "\"${.student.out_feature}\".")
    try:
        staged = split_bottom_up(student)
    except TypeError:
        # split_bottom_up words its refusal for YAML configs (MODEL.HYBRIDKT.*): name the
        # LazyConfig field instead, as a one-line user error of the tools.
        raise ValueError(
            f"hybrid_bottom_up(student=...) got a {type(student).__name__}, which cannot be "
            f"split into stages; student must build one of: {'; '.join(SUPPORTED_BOTTOM_UPS)} "
            "(model.backbone.bottom_up of an FPN, model.backbone.net of ViTDet).") from None
    engine = build_hybrid_engine(cfg, staged, features, settings.mode)
    return HybridBottomUp(engine, features, settings,
                          teacher_input_conventions(cfg) if settings.mode.needs_teacher else None)


def _teacher_list(teacher: object) -> list[Mapping[str, Any]] | None:
    """The teachers of ``teacher=[...]`` (a ListConfig once instantiated), None for one."""
    if teacher is None or isinstance(teacher, Mapping):
        return None
    if isinstance(teacher, str) or not isinstance(teacher, Sequence):
        raise ValueError(f"hybrid_bottom_up: teacher={teacher!r} must be a dict of teacher keys "
                         "or a list of them (several teachers).")
    listed = list(teacher)
    if not listed:
        raise ValueError("hybrid_bottom_up: teacher=[] lists no teacher; give at least one, or "
                         "transfer='none' without teacher.")
    for k, item in enumerate(listed):
        if not isinstance(item, Mapping):
            raise ValueError(f"hybrid_bottom_up: teacher[{k}] is {item!r}; each teacher is a "
                             "dict of teacher keys (framework, arch, weights, ..., name).")
    return listed


def _plain(value: Any) -> Any:
    """A config value as yacs holds it (ListConfig and tuples become lists)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return value


def hybrid_bottom_up_keywords() -> list[str]:
    """The keywords ``hybrid_bottom_up`` takes: its own and the transfer modes' names."""
    return keyword_names(hybrid_bottom_up) + list(transfer_mode_names())


def check_teacher_keys(teacher: Mapping[str, Any], where: str = "hybrid_bottom_up",
                       extra: Sequence[str] = ()) -> None:
    """Refuses a ``teacher=dict(...)`` key that is not a ``MODEL.HYBRIDKT.TEACHER`` key.

    Args:
        teacher: the teacher mapping of ``hybrid_bottom_up``.
        where: the config place of that mapping, for the message.
        extra: keys allowed besides (``name``, in a list of teachers).

    Raises:
        ValueError: an unknown key, naming the closest valid ones.
    """
    cfg = get_cfg()
    add_hybridkt_config(cfg)
    valid = sorted([k.lower() for k in cfg.MODEL.HYBRIDKT.TEACHER] + list(extra))
    for key in teacher:
        if not isinstance(key, str) or key.lower() not in valid:  # as the YAML keys, any case
            raise ValueError(f"{where}: teacher key {key!r} is not one of {valid}."
                             f"{did_you_mean(str(key), valid, n=1)}")
