"""Building the frozen teacher from ``MODEL.HYBRIDKT.TEACHER.*`` and loading its weights.

Several teachers are listed in ``MODEL.HYBRIDKT.TEACHERS`` with the same keys (``teacher_entries``
reads either form); each is built and loaded by the same code as the one teacher.

The network is that of the detector config the teacher was trained with (``TEACHER.CONFIG``,
see ``teacher_config``), or comes from torchvision or timm (built without weights), or is a
detectron2 ResNet;
the weights are loaded by the core's one policy (``core.load_teacher``): every weight a stage
uses must be in the file, shapes must match, unexpected keys are refused unless
``WEIGHTS_STRICT`` is False (a classifier head such as ``fc.*`` is always allowed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from detectron2.config import CfgNode, get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone.resnet import build_resnet_backbone
from torch import nn

from ..core import InputConvention, StagedBackbone
from ..core.teacher_loading import load_teacher
from ..core.teacher_spec import TeacherSpec
from ..core.plain_vit_stages import is_timm_vit
from ..core.zoo_teachers import build_zoo_model, split_zoo_model
from ..core.balance import TEACHER_SCHEDULES
from ..core.closest_names import did_you_mean
from .config import TEACHER_FRAMEWORKS, add_hybridkt_config
from .stage_split import split_detectron2_resnet
from .teacher_config import config_convention, teacher_from_config


SINGLE_TEACHER = "MODEL.HYBRIDKT.TEACHER"


@dataclass(frozen=True)
class TeacherEntry:
    """One teacher of a config.

    Attributes:
        node: its ``MODEL.HYBRIDKT.TEACHER`` keys (``CONFIG``, ``ARCH``, ``WEIGHTS``, ...).
        where: its place in the config, as messages name it (``MODEL.HYBRIDKT.TEACHERS[1]``).
        name: its name in the logs (``hkt_alpha/<name>``).
    """

    node: CfgNode
    where: str
    name: str

    def label(self) -> str:
        """``MODEL.HYBRIDKT.TEACHERS[1] (name)``, for messages."""
        return self.where if self.where == SINGLE_TEACHER else f"{self.where} ({self.name!r})"


def default_teacher_node() -> CfgNode:
    """``MODEL.HYBRIDKT.TEACHER`` with the defaults of ``add_hybridkt_config``."""
    cfg = get_cfg()
    add_hybridkt_config(cfg)
    return cfg.MODEL.HYBRIDKT.TEACHER


def teacher_entries(cfg: CfgNode) -> list[TeacherEntry]:
    """The teachers of a config, in order: those of ``MODEL.HYBRIDKT.TEACHERS``, or the one of
    ``MODEL.HYBRIDKT.TEACHER``. Nothing is built.

    Raises:
        ValueError: TEACHERS is not a list of mappings, an entry has an unknown key, a value
            of the wrong type or a bad NAME, names repeat, or TEACHERS is set while a
            ``MODEL.HYBRIDKT.TEACHER`` key is changed from its default too.
    """
    hk = cfg.MODEL.HYBRIDKT
    listed = hk.TEACHERS
    if isinstance(listed, (list, tuple)) and not listed:
        return [TeacherEntry(hk.TEACHER, SINGLE_TEACHER, "0")]
    if not isinstance(listed, (list, tuple)):
        raise ValueError(f"MODEL.HYBRIDKT.TEACHERS is {listed!r}: write a list with one mapping "
                         "of MODEL.HYBRIDKT.TEACHER keys per teacher (ARCH, WEIGHTS, ..., NAME).")
    defaults = default_teacher_node()
    changed = sorted(k for k in defaults if _plain(hk.TEACHER[k]) != _plain(defaults[k]))
    if changed:
        # Which would train? Refused rather than guessed (a base file's TEACHER keys included).
        raise ValueError(
            f"MODEL.HYBRIDKT.TEACHERS lists {len(listed)} teacher(s), and MODEL.HYBRIDKT.TEACHER "
            f"sets {', '.join(changed)} too: give the teachers in one place. Move those keys "
            "into the TEACHERS entries (a one-element list is the one-teacher run), or set "
            f"them back to their defaults ({', '.join(f'{k}: {defaults[k]!r}' for k in changed)})"
            " where a base file sets them, or drop TEACHERS.")
    entries = []
    valid = sorted(defaults) + ["NAME"]
    for k, item in enumerate(listed):
        where = f"MODEL.HYBRIDKT.TEACHERS[{k}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where} is {item!r}: each teacher is a mapping of "
                             "MODEL.HYBRIDKT.TEACHER keys (ARCH, WEIGHTS, ...) and an optional "
                             "NAME.")
        node, name = defaults.clone(), str(k)
        for key, value in item.items():
            upper = key.upper() if isinstance(key, str) else key
            if upper not in valid:  # any case, as hybrid_bottom_up's lower-case keys
                raise ValueError(f"{where}: {key!r} is not a teacher key; the keys are "
                                 f"{valid}.{did_you_mean(str(key).upper(), valid, n=1)}")
            if upper == "NAME":
                name = value
            else:
                node[upper] = _checked_value(value, defaults[upper], f"{where}.{upper}")
        if not isinstance(name, str) or not name or "/" in name or "." in name:
            raise ValueError(f"{where}.NAME is {name!r}: a teacher's name is a non-empty "
                             "string without '/' or '.' (it is part of the logged key "
                             "hkt_alpha/<NAME>).")
        entries.append(TeacherEntry(node, where, name))
    names = [e.name for e in entries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"MODEL.HYBRIDKT.TEACHERS names {twice} more than once; give each "
                         "teacher its own NAME (the logs key alpha and L1/L2 by it).")
    return entries


def check_teacher_sampling(value: object, where: str = "MODEL.HYBRIDKT.TEACHER_SAMPLING") -> str:
    """``TEACHER_SAMPLING`` checked: one of ``core.balance.TEACHER_SCHEDULES``."""
    if value not in TEACHER_SCHEDULES:
        raise ValueError(f"{where} is {value!r}; use one of {TEACHER_SCHEDULES} (every teacher "
                         "at every step, or one teacher per step in turn)."
                         f"{did_you_mean(str(value), TEACHER_SCHEDULES, n=1)}")
    return str(value)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _checked_value(value: Any, default: Any, where: str) -> Any:
    """A TEACHERS entry's value, of the type of its MODEL.HYBRIDKT.TEACHER default (what
    yacs checks for the one-teacher keys)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, list):
        ok = isinstance(value, Sequence) and not isinstance(value, str) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        value = list(value) if ok else value
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(f"{where} is {value!r}, a {type(value).__name__}; it takes a "
                         f"{type(default).__name__} (as MODEL.HYBRIDKT.TEACHER's, default "
                         f"{default!r}).")
    return value


def _zoo_teacher(framework: str, arch: str, where: str = SINGLE_TEACHER) -> StagedBackbone:
    kind = f"{framework}.{arch}"
    model = build_zoo_model(kind, where=f"{where}.ARCH")
    if is_timm_vit(model) and not model.dynamic_img_size:
        # detectron2 batches vary in size and no YAML key reaches the constructor: a timm ViT
        # resamples its position embedding per batch instead of refusing all but img_size.
        model = build_zoo_model(kind, {"dynamic_img_size": True}, where=f"{where}.ARCH")
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        # The teacher lends its feature extractor only; a classifier would sit unused.
        model.fc = nn.Identity()
    return split_zoo_model(kind, model)


def _detectron2_teacher(cfg: CfgNode, arch: str, where: str = SINGLE_TEACHER) -> StagedBackbone:
    try:
        depth = int(arch.lower().removeprefix("resnet"))
    except ValueError:
        depth = -1
    if depth not in (18, 34, 50, 101, 152):
        raise ValueError(
            f"{where}.ARCH {arch!r}: a detectron2 teacher is a ResNet, name it "
            "'resnet<depth>' with depth 18, 34, 50, 101 or 152"
        )
    tcfg = cfg.clone()
    tcfg.defrost()
    r = tcfg.MODEL.RESNETS
    # A standard ResNet whatever the student's MODEL.RESNETS says; frozen by the engine.
    r.DEPTH, r.OUT_FEATURES, r.NORM = depth, ["res2", "res3", "res4", "res5"], "FrozenBN"
    r.NUM_GROUPS, r.WIDTH_PER_GROUP, r.STEM_OUT_CHANNELS = 1, 64, 64
    r.RES2_OUT_CHANNELS = 64 if depth < 50 else 256
    r.RES5_DILATION, r.DEFORM_ON_PER_STAGE = 1, [False] * 4
    tcfg.MODEL.BACKBONE.FREEZE_AT = 0
    return split_detectron2_resnet(build_resnet_backbone(tcfg, ShapeSpec(channels=3)))


def teacher_input_convention(cfg: CfgNode, entry: TeacherEntry | None = None
                             ) -> InputConvention:
    """The teacher's pixel convention: its CONFIG's, else its PIXEL_MEAN/STD/INPUT_FORMAT.

    Args:
        cfg: the config.
        entry: which teacher (``teacher_entries``); None: ``MODEL.HYBRIDKT.TEACHER``.
    """
    t, where = (cfg.MODEL.HYBRIDKT.TEACHER, SINGLE_TEACHER) if entry is None else \
        (entry.node, entry.where)
    if t.CONFIG:
        return config_convention(t.CONFIG)
    try:
        return InputConvention(tuple(t.PIXEL_MEAN), tuple(t.PIXEL_STD), t.INPUT_FORMAT)
    except ValueError as err:
        raise ValueError(f"{where}.PIXEL_MEAN/PIXEL_STD/INPUT_FORMAT: {err}") from None


def teacher_input_conventions(cfg: CfgNode) -> InputConvention | list[InputConvention]:
    """Every teacher's pixel convention: one, or a list with several teachers (what
    ``HybridForward(teacher_input=...)`` takes)."""
    conventions = [teacher_input_convention(cfg, e) for e in teacher_entries(cfg)]
    return conventions[0] if len(conventions) == 1 else conventions


def student_input_convention(cfg: CfgNode) -> InputConvention:
    """What detectron2 feeds the backbone: INPUT.FORMAT images minus PIXEL_MEAN over PIXEL_STD."""
    if cfg.INPUT.FORMAT not in ("RGB", "BGR"):
        raise ValueError(f"INPUT.FORMAT {cfg.INPUT.FORMAT!r}: hybridkt needs 'RGB' or 'BGR' input")
    return InputConvention(tuple(cfg.MODEL.PIXEL_MEAN), tuple(cfg.MODEL.PIXEL_STD),
                           cfg.INPUT.FORMAT)


def teacher_spec(cfg: CfgNode, default_prefix: str = "", entry: TeacherEntry | None = None
                 ) -> TeacherSpec:
    """A teacher's keys as the core's TeacherSpec (validated, keys named).

    Args:
        cfg: the config.
        default_prefix: WEIGHTS_PREFIX when the config leaves it empty.
        entry: which teacher (``teacher_entries``); None: ``MODEL.HYBRIDKT.TEACHER``.
    """
    t, where = (cfg.MODEL.HYBRIDKT.TEACHER, SINGLE_TEACHER) if entry is None else \
        (entry.node, entry.where)
    values = dict(checkpoint=t.WEIGHTS or None, prefix=t.WEIGHTS_PREFIX or default_prefix,
                  remap=t.WEIGHTS_REMAP or (), strict=t.WEIGHTS_STRICT,
                  allow_random_init=t.ALLOW_RANDOM_INIT,
                  trust_checkpoint=cfg.MODEL.HYBRIDKT.TRUST_CHECKPOINTS)
    keys = dict(checkpoint="WEIGHTS", prefix="WEIGHTS_PREFIX", remap="WEIGHTS_REMAP",
                strict="WEIGHTS_STRICT", allow_random_init="ALLOW_RANDOM_INIT")
    names = {k: f"{where}.{v}" for k, v in keys.items()}
    names["trust_checkpoint"] = "MODEL.HYBRIDKT.TRUST_CHECKPOINTS"
    return TeacherSpec.from_mapping(values, where=where, names=names)


def build_teacher(cfg: CfgNode, entry: TeacherEntry | None = None) -> StagedBackbone:
    """The teacher network, split into stages, with its checkpoint loaded (not yet frozen).

    Args:
        cfg: the config.
        entry: which teacher (``teacher_entries``); None: ``MODEL.HYBRIDKT.TEACHER``.

    Raises:
        ValueError: an unknown framework, architecture or remap preset, or no WEIGHTS without
            ALLOW_RANDOM_INIT.
        hybridkt_ext.core.TeacherCheckpointError: the checkpoint does not fit (the message lists
            missing and unexpected keys and names the prefix/remap to fix).
    """
    t, where = (cfg.MODEL.HYBRIDKT.TEACHER, SINGLE_TEACHER) if entry is None else \
        (entry.node, entry.where)
    if t.CONFIG:  # the network (and key prefix) of the config the teacher was trained with
        staged, _, prefix = teacher_from_config(t.CONFIG)
        load_teacher(staged, teacher_spec(cfg, default_prefix=prefix, entry=entry))
        return staged
    spec = teacher_spec(cfg, entry=entry)  # before building: a typo fails in milliseconds
    if t.FRAMEWORK in ("torchvision", "timm"):
        staged = _zoo_teacher(t.FRAMEWORK, t.ARCH, where)
    elif t.FRAMEWORK == "detectron2":
        staged = _detectron2_teacher(cfg, t.ARCH, where)
    else:
        raise ValueError(
            f"{where}.FRAMEWORK is {t.FRAMEWORK!r}; use one of {TEACHER_FRAMEWORKS}"
        )
    load_teacher(staged, spec)
    return staged
