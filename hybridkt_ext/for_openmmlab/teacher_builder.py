"""Building the frozen teacher of a ``HybridBackbone`` from its spec.

The teacher network is named in one of three ways, next to ``core.TeacherSpec``'s loading keys::

    # 1. by the config it was trained with (recommended: nothing to copy by hand)
    teacher=dict(config='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
                 checkpoint='checkpoints/deeplabv3_r101-d8.pth')
    # 2. as a backbone dict of mmseg (or mmpretrain, 'mmpretrain.ConvNeXt')
    teacher=dict(type='ResNetV1c', depth=101, dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
                 checkpoint=..., prefix='backbone.')
    # 3. from torchvision or timm, built without weights
    teacher=dict(type='timm.convnext_tiny', checkpoint='convnext_tiny.safetensors')
    # 4. by the detectron2 config it was trained with (a YAML, or 'detectron2::<LazyConfig>')
    teacher=dict(config='COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml', checkpoint='model_final.pkl')

    # loading keys (all optional but checkpoint): prefix, remap, strict, input,
    # allow_random_init, trust_checkpoint (see hybridkt_ext.core.TeacherSpec)

With ``config``, the backbone, the key prefix (``'backbone.'``) and the pixel convention (the
config's data preprocessor) come from that config. With a backbone dict, an mmengine checkpoint's
own training config (``meta['cfg']``) is compared with the dict, so a dilation or depth copied
wrong fails before the first step instead of training the wrong network, and the teacher is fed
the pixel convention of that config's data preprocessor (unless ``input`` says otherwise). The
stored text is read as literals, never executed.
"""
from __future__ import annotations

import contextlib
import copy
import difflib
import re
from typing import Iterator

import torch
from torch import nn

from hybridkt_ext.core import InputConvention, StagedBackbone, TeacherCheckpointError
from hybridkt_ext.core.teacher_weights import read_weights_and_meta
from hybridkt_ext.core.closest_names import did_you_mean
from hybridkt_ext.core.teacher_loading import load_teacher
from hybridkt_ext.core.teacher_spec import SPEC_KEYS, TeacherSpec
from hybridkt_ext.core.zoo_teachers import build_zoo_model, is_zoo_name, split_zoo_model

from .backbone_source import BackboneSource
from .detectron2_config_teacher import build_detectron2_config_teacher, is_detectron2_config
from .teacher_config import (backbone_from_config, backbone_of_config, config_hints,
                             config_scope, convention_of_config, in_scope, split_scope,
                             stored_training_config, structural_differences)


def _constructor_error(kind: str, err: Exception) -> str:
    # Python names the offending keyword; a near-miss of a loading key is the likely cause.
    found = re.search(r"unexpected keyword argument '(\w+)'", str(err))
    close = difflib.get_close_matches(found.group(1), SPEC_KEYS + ("config",), n=1) \
        if found else []
    hint = f" Did you mean teacher.{close[0]}?" if close else ""
    return (f"teacher: building {kind} failed: {err}.{hint} Every teacher key except "
            f"{list(SPEC_KEYS)} is passed to the {kind} constructor.")


def _in_other_scopes(kind: str, source: BackboneSource) -> str:
    """A sentence naming ``'<scope>.<kind>'`` for each other loaded OpenMMLab package that
    registers ``kind`` ('' for none): a teacher trained with mmseg, used in mmdet, keeps
    mmseg's type, and ``ResNetV1c`` alone is looked up in mmdet's registry."""
    if "." in kind:
        return ""
    root = source.registry._get_root_registry()
    scopes = sorted(scope for scope, child in root.children.items()
                    if scope != source.framework and kind in child.module_dict)
    if not scopes:
        return ""
    return (f" {' / '.join(repr(f'{s}.{kind}') for s in scopes)} is registered: write the "
            "scope of the library the teacher was trained with.")


def _build_backbone(cfg: dict, source: BackboneSource) -> nn.Module:
    kind, models = cfg["type"], source.registry
    if models.get(kind) is None:
        raise ValueError(
            f"teacher.type={kind!r} is neither a registered {source.framework} backbone nor "
            f"'torchvision.<name>' / 'timm.<name>'.{_in_other_scopes(kind, source)}"
            f"{did_you_mean(kind, models.module_dict)} "
            "Custom backbones must be imported first (custom_imports); or name the teacher by "
            "its training config, teacher=dict(config=..., checkpoint=...).")
    if cfg.get("pretrained") or cfg.get("init_cfg"):
        raise ValueError("teacher: set `checkpoint` (loaded by hybridkt) instead of "
                         "`pretrained`/`init_cfg`, which mmengine would apply at init_weights.")
    cfg = {k: v for k, v in cfg.items() if k not in ("pretrained", "init_cfg")}
    try:
        return models.build(cfg)
    except TypeError as err:
        raise ValueError(_constructor_error(kind, err)) from err


def _network(spec: dict, here: str) -> tuple[dict, InputConvention | None, str | None]:
    """The network dict, the convention its config implies and the prefix it implies."""
    if "config" not in spec:
        kind = spec.get("type")
        if not isinstance(kind, str):
            raise ValueError(
                "teacher needs `config` (the config it was trained with) or `type` (an mmseg "
                "backbone such as 'ResNetV1c', or 'torchvision.resnet50' / 'timm.<name>'), "
                f"got type={kind!r}.")
        return spec, None, None
    extra = sorted(set(spec) - {"config"})
    if extra:
        raise ValueError(f"teacher.config names the whole network; {extra} cannot be set next "
                         f"to it (loading keys {list(SPEC_KEYS)} can).")
    backbone, convention = backbone_from_config(spec["config"], here)
    return backbone, convention, "backbone."


def build_teacher(spec: dict, source: BackboneSource
                  ) -> tuple[StagedBackbone, InputConvention | None]:
    """Builds, splits and loads the teacher; returns it and its input convention.

    ``source``: the framework whose registry builds a backbone dict (the library's
    ``HybridBackbone.backbone_source()``).

    The teacher is not yet frozen here; HybridForward freezes it.

    Raises:
        ValueError: the spec is malformed (an unknown type with close names suggested, a
            non-boolean flag, a bad ``input`` or ``remap``), or no checkpoint is given
            without ``allow_random_init=True``.
        UnsupportedBackboneError: the network is not one chain of stages.
        TeacherCheckpointError: the checkpoint is missing, unreadable or does not fit the
            teacher (missing stage weights, shapes, or a training config that differs).
    """
    if not isinstance(spec, dict):
        raise ValueError(f"teacher must be a dict (config or backbone, plus checkpoint), got "
                         f"{spec!r}.")
    spec = copy.deepcopy(dict(spec))
    loading = {k: spec.pop(k) for k in SPEC_KEYS if k in spec}
    if is_detectron2_config(spec.get("config")):
        extra = sorted(set(spec) - {"config"})
        if extra:
            raise ValueError(f"teacher.config names the whole network; {extra} cannot be set "
                             f"next to it (loading keys {list(SPEC_KEYS)} can).")
        return build_detectron2_config_teacher(spec["config"], loading)
    network, convention, prefix = _network(spec, source.framework)
    if prefix is not None:
        loading.setdefault("prefix", prefix)
    # Everything that needs no model is checked first, so a typo fails in milliseconds.
    teacher = TeacherSpec.from_mapping(loading)
    kind = network["type"]
    source.refuse_if_not_a_chain(kind)
    if is_zoo_name(kind):
        model = build_zoo_model(kind, {k: v for k, v in network.items() if k != "type"})
        staged = split_zoo_model(kind, model)
    else:
        model = _build_backbone(network, source)
        staged = source.stages(model)[0]
    state = None
    if teacher.checkpoint is not None:
        state, meta = read_weights_and_meta(teacher.checkpoint, trust=teacher.trust_checkpoint,
                                           error=TeacherCheckpointError)
        stored = stored_training_config(meta, teacher.checkpoint)
        if stored is not None:
            trained = backbone_of_config(stored)
            if trained is not None:  # its types are named in the checkpoint's own scope
                trained = in_scope(trained, config_scope(stored), source.framework)
            if trained is not None and not is_zoo_name(kind):
                _check_training_config(network, model, trained, teacher.checkpoint, source)
            if "config" not in spec:  # a named config gives the convention itself
                convention = _stored_convention(stored, teacher.checkpoint)
    load_teacher(staged, teacher, state=state)
    return staged, teacher.input or convention


def _stored_convention(stored: dict, path: str) -> InputConvention | None:
    """The pixels the checkpoint's training config fed its backbone (its data preprocessor)."""
    try:
        return convention_of_config(stored)
    except ValueError as err:
        raise TeacherCheckpointError(
            f"{path}: the training config stored in it has an unusable data_preprocessor "
            f"({err}). Give the teacher's pixel convention yourself: teacher.input=dict(mean=..., "
            "std=..., channel_order='RGB'|'BGR').") from None


def _same_type(here: object, trained: object, framework: str) -> bool:
    """``X`` built in ``framework`` and ``framework.X`` are one type (``trained`` has been
    qualified with its checkpoint's scope already); names are compared otherwise."""
    if not isinstance(here, str) or not isinstance(trained, str):
        return here == trained
    return split_scope(here, framework) == split_scope(trained, framework)


@contextlib.contextmanager
def _weights_take_no_memory() -> Iterator[None]:
    """Modules built inside get their parameters and buffers on the meta device.

    The network of a checkpoint's stored config is built only to compare its structure, and
    its sizes come from someone else's file (``embed_dims=10**6`` would allocate terabytes).
    ``torch.device('meta')`` as a default device would do it too, but backbones that call
    ``.item()`` while being built (MiT, Swin, ViT) fail under it.
    """
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(module, name, param)

    def buffer_on_meta(module: nn.Module, name: str, tensor: torch.Tensor | None,
                       persistent: bool = True) -> None:
        register_buffer(module, name, None if tensor is None else tensor.to("meta"), persistent)

    nn.Module.register_parameter = parameter_on_meta  # type: ignore[method-assign]
    nn.Module.register_buffer = buffer_on_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]


def _check_training_config(network: dict, model: nn.Module, trained: dict, path: str,
                           source: BackboneSource) -> None:
    """Refuses a teacher that is not the network its checkpoint was trained as."""
    if not _same_type(network.get("type"), trained.get("type"), source.framework):
        differences = [f"type {network.get('type')!r} here vs {trained.get('type')!r}"]
    else:
        try:
            with _weights_take_no_memory():
                as_trained = _build_backbone(trained, source)
            differences = structural_differences(model, as_trained)
        except Exception:  # the training config needs imports we lack: nothing to compare
            return
    if differences:
        shown = "; ".join(differences[:6]) + (" ..." if len(differences) > 6 else "")
        hints = config_hints(trained, differences, type(model).__name__)
        raise TeacherCheckpointError(
            f"{path} was trained as another network than the teacher built here ({shown}: "
            "here vs in its training config). "
            + (f"Its training config sets {', '.join(hints)}. " if hints else "")
            + "Name the teacher by the config it was trained with, "
            "teacher=dict(config=<that config>, checkpoint=...), or copy those values.")
