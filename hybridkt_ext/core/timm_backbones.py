"""Teachers from timm's zoo: built without downloads, cut into stages at timm's own features.

timm describes every backbone it can extract features from with ``model.feature_info``: one
entry per returned feature (``module``, ``num_chs``, ``reduction``). ``split_timm_model`` reads
that declaration instead of keeping per-model tables: it flattens the model into its children in
registration order, as timm's ``FeatureListNet`` does (``_module_list``, one ``nn.Sequential``
level deep where a feature module sits inside one), and cuts that chain right after each feature
module. Timm's wrapper relies on registration order being forward order; here that is checked:
the chain must reproduce the features that hooks on the model's own forward see, so a model whose
forward does more than run its children in order (position embeddings, a class token) is
refused with ``UnsupportedBackboneError`` rather than split wrongly. timm's plain
``VisionTransformer`` (ViT, DeiT, DINOv2 with registers) is the exception: it is cut at block
groups by ``plain_vit_stages.split_plain_vit``.

Stage outputs are NCHW. Models that run NHWC (timm's Swin, ``output_fmt == "NHWC"``) or on
tokens (B, H*W, C) are converted at each stage boundary by a permute or reshape that the next
stage undoes exactly. Chain-extracted timm features are the very tensors the next module
consumes (that is how ``FeatureListNet`` reads them), so no stage needs a ``tap``.
"""
from __future__ import annotations

import difflib
import math
from copy import deepcopy
from typing import Any, Sequence

import timm
import torch
from timm.models._features import (FeatureDictNet, FeatureGetterNet, FeatureHookNet, FeatureInfo,
                                   _module_list, feature_take_indices)
from torch import nn

from .errors import UnsupportedBackboneError
from .plain_vit_stages import is_timm_vit, split_plain_vit
from .stage_cutting import conv_dilation
from .stages import StagedBackbone, StageSpec, SubmoduleChain

# pretrained_cfg fields that name a weight source: timm would load from them if pretrained.
_WEIGHT_SOURCES = ("file", "url", "hf_hub_id", "hf_hub_filename", "state_dict")
_NO_DOWNLOAD = ("weights come from the teacher checkpoint (hybridkt_ext.core.load_teacher_weights)"
                ", never from timm")
NCHW, NHWC, TOKENS = "NCHW", "NHWC", "NLC"


def create_timm_model(name: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, pretrained=False, **kwargs)``, refusing every weight source.

    Args:
        name: a timm architecture, optionally with a pretrained tag (``"resnet50.a1_in1k"``;
            the tag selects only the config here). Hub and local-directory names are refused:
            timm would fetch their configs.
        **kwargs: passed to ``timm.create_model`` (``num_classes``, ``img_size``, ...).

    Raises:
        ValueError: ``pretrained=True``, a ``checkpoint_path``, a ``pretrained_cfg`` or
            ``pretrained_cfg_overlay`` naming a weight file or URL, a source-prefixed name, or
            a name timm does not know (the message lists close matches).
    """
    if kwargs.pop("pretrained", False):
        raise ValueError(f"create_timm_model({name!r}, pretrained=True) is refused: {_NO_DOWNLOAD}"
                         "; drop pretrained=True and load the teacher checkpoint.")
    if kwargs.get("checkpoint_path"):
        raise ValueError(f"create_timm_model({name!r}) does not take checkpoint_path: "
                         f"{_NO_DOWNLOAD}, checked against the model's keys.")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay"):
        cfg = kwargs.get(key)
        cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else cfg
        sources = [k for k in _WEIGHT_SOURCES if isinstance(cfg, dict) and cfg.get(k)]
        if sources:
            raise ValueError(f"create_timm_model({name!r}) got a {key} with {sources[0]!r}: "
                             f"{_NO_DOWNLOAD}.")
    if ":" in name:
        raise ValueError(f"create_timm_model builds architectures by name; {name!r} names a "
                         "model source (hf-hub:, local-dir:) that timm would read a config from.")
    if not timm.is_model(name):
        matches = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = (f"did you mean {', '.join(repr(m) for m in matches)}?" if matches
                else "see timm.list_models() for the names it knows.")
        raise ValueError(f"timm has no model {name!r}; {hint}")
    return timm.create_model(name, pretrained=False, **kwargs)


def _model_name(model: nn.Module) -> str:
    arch = getattr(model, "pretrained_cfg", None) or {}
    arch = arch.get("architecture") if isinstance(arch, dict) else None
    return f"timm {type(model).__name__}" + (f" ({arch})" if arch else "")


def _unsupported(model: nn.Module, why: str) -> UnsupportedBackboneError:
    return UnsupportedBackboneError(
        f"split_timm_model cannot split {_model_name(model)}: {why}. Declare its stages by hand "
        "(StageSpec / StagedBackbone) or choose a timm model whose features lie on one chain.")


def _feature_info(model: nn.Module) -> FeatureInfo:
    """All of the model's feature entries, validated by timm's own ``FeatureInfo``."""
    if isinstance(model, (FeatureDictNet, FeatureHookNet, FeatureGetterNet)):
        raise _unsupported(model, "it is a features_only wrapper, whose children are renamed; "
                                  "split the plain model (created without features_only)")
    raw = getattr(model, "feature_info", None)
    if isinstance(raw, FeatureInfo):
        raw = raw.info
    if not isinstance(raw, (list, tuple)) or not raw:
        raise _unsupported(model, "it has no feature_info list to read stages from")
    indices, _ = feature_take_indices(len(raw))  # every feature, in order
    try:
        return FeatureInfo(deepcopy(list(raw)), tuple(indices))  # copies: timm edits the dicts
    except AssertionError as error:
        reason = str(error) or "a field timm requires is missing or out of order"
        raise _unsupported(model, f"its feature_info is malformed ({reason})") from error


def _forward_chain(model: nn.Module, info: FeatureInfo) -> tuple[list[str], list[int]]:
    """The model's children in registration order (flattened like ``FeatureListNet`` does) up
    to the last feature module, and the index of the entry that ends each feature."""
    modules = info.module_name()
    hooks = [d.get("hook_type", "forward") for d in info.get_dicts()]
    if any(h != "forward" for h in hooks):
        raise _unsupported(model, "timm reads some features from a module's input "
                                  f"(hook_type {sorted(set(hooks) - {'forward'})})")
    for flatten in (False, True):
        entries = [old for _, old, _ in _module_list(model, flatten_sequential=flatten)]
        ends = []
        for module in modules:
            # A feature module is an entry, or the container of consecutive (flattened) entries.
            hits = [i for i, e in enumerate(entries) if e == module or e.startswith(module + ".")]
            ends.append(hits[-1] if hits and module else None)
        missing = [m for m, end in zip(modules, ends) if end is None]
        if not missing:
            break
    if missing:
        raise _unsupported(model, f"feature module {missing[0]!r} {_off_chain(model, missing[0])}")
    if any(b <= a for a, b in zip(ends, ends[1:])):
        raise _unsupported(model, f"its feature modules {modules} are not in registration order, "
                                  "or two of them end at the same child")
    return entries[: ends[-1] + 1], ends


def _off_chain(model: nn.Module, module: str) -> str:
    """Why no chain of whole children ends at feature ``module``."""
    if not module:
        return "is the whole model, not one of its children"
    try:
        model.get_submodule(module)
    except AttributeError:
        return "is no submodule of the model (timm computes that feature in a custom forward)"
    return ("lies deeper than the model's children and their nn.Sequential children, so no "
            "chain of whole children ends at it (timm reads it with a hook)")


def _probe(model: nn.Module, info: FeatureInfo) -> torch.Tensor:
    """A random image the model accepts: its fixed input size, else one resolving every stride.

    Random, not zeros: a missing position embedding or bias must change the features. Not
    square where the size is free, so a map's channel axis is not mistaken for its width.
    """
    try:
        from timm.models._input import get_model_input_config
        config = get_model_input_config(model)
    except ImportError:  # older timm: the pretrained config carries the same fields
        config = dict(getattr(model, "pretrained_cfg", None) or {})
    in_chans, *size = config.get("input_size", (3, 224, 224))
    if not config.get("fixed_input_size", False):
        side = max(64, 2 * max(info.reduction()))
        size = [side, side * 3 // 2]
    reference = next(model.parameters(), None)
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(1, in_chans, *size, generator=generator)
    if reference is not None:
        image = image.to(reference.device, reference.dtype)
    return image


def _run_chain(model: nn.Module, entries: list[str], ends: list[int],
               image: torch.Tensor) -> list[Any]:
    x, outputs, stops = image, [], set(ends)
    for index, name in enumerate(entries):
        try:
            x = model.get_submodule(name)(x)
        except Exception as error:  # noqa: BLE001 -- any failure means "not a chain"
            raise _unsupported(model, f"running its children in registration order fails at "
                                      f"{name!r} ({type(error).__name__}: {error})") from error
        if index in stops:
            outputs.append(x)
    return outputs


def _hooked_features(model: nn.Module, modules: Sequence[str],
                     image: torch.Tensor) -> list[list[Any]]:
    """What each feature module outputs during the model's own forward (every call of it)."""
    seen: list[list[Any]] = [[] for _ in modules]
    handles = [model.get_submodule(m).register_forward_hook(
        lambda _module, _args, out, k=k: seen[k].append(out)) for k, m in enumerate(modules)]
    try:
        getattr(model, "forward_features", model)(image)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _same(a: Any, b: Any) -> bool:
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return False
    # A tolerance, not equality: GPU kernels may differ between two calls, while a skipped
    # operation (a position embedding, a residual) changes features by far more.
    return bool((a - b).abs().max() <= 1e-3 * b.abs().max() + 1e-5)


def _layout(model: nn.Module, out: Any, channels: int, module: str) -> str:
    """NCHW, NHWC or NLC (tokens), from the output's shape and the model's ``output_fmt``."""
    declared = getattr(model, "output_fmt", NCHW)
    declared = getattr(declared, "value", declared)  # timm's Format enum or a string
    if isinstance(out, torch.Tensor) and out.dim() == 3 and out.shape[-1] == channels:
        return TOKENS
    if isinstance(out, torch.Tensor) and out.dim() == 4:
        fits = [fmt for fmt, axis in ((NCHW, 1), (NHWC, 3)) if out.shape[axis] == channels]
        if fits:
            return declared if declared in fits else fits[0]
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    raise _unsupported(model, f"feature {module!r} outputs {shape}, which is no NCHW, NHWC or "
                              f"token layout with its {channels} declared channels")


def _grid(hw: Sequence[int], stride: float, tokens: int) -> tuple[int, int]:
    """The (H, W) of ``tokens`` patch tokens made from an (h, w) input at relative ``stride``."""
    for height in (math.floor(hw[0] / stride), math.ceil(hw[0] / stride)):
        for width in (math.floor(hw[1] / stride), math.ceil(hw[1] / stride)):
            if height * width == tokens:
                return height, width
    raise ValueError(f"{tokens} tokens are no {hw[0]}x{hw[1]} / {stride:g} grid (extra tokens, "
                     "such as a class token, cannot pass a stage boundary)")


def _map_size(model: nn.Module, out: torch.Tensor, layout: str, hw: tuple[int, ...],
              stride: float, module: str) -> tuple[int, int]:
    """The (H, W) of a feature output once it is an NCHW map."""
    if layout == NCHW:
        return out.shape[2], out.shape[3]
    if layout == NHWC:
        return out.shape[1], out.shape[2]
    try:
        return _grid(hw, stride, out.shape[1])
    except ValueError as error:
        raise _unsupported(model, f"feature {module!r}: {error}") from error


class TimmStage(SubmoduleChain):
    """Runs a span of a timm model's children, NCHW at both ends.

    Args:
        root: the timm model owning the children (unregistered, as in ``SubmoduleChain``).
        names: the children's dotted names in forward order.
        in_layout: the layout the previous stage's children produced (None: the image).
        out_layout: the layout these children produce (NCHW, NHWC or NLC tokens).
        stride: this stage's reduction over the previous one's (to lay tokens out on a grid).
    """

    def __init__(self, root: nn.Module, names: Sequence[str], in_layout: str | None,
                 out_layout: str, stride: float) -> None:
        super().__init__(root, names)
        self.in_layout, self.out_layout, self.stride = in_layout, out_layout, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hw = tuple(x.shape[-2:])
        # Views only: the children get the tensor the previous children returned, bit for bit.
        if self.in_layout == NHWC:
            x = x.permute(0, 2, 3, 1)
        elif self.in_layout == TOKENS:
            x = x.flatten(2).transpose(1, 2)
        x = super().forward(x)
        if self.out_layout == NHWC:
            return x.permute(0, 3, 1, 2)
        if self.out_layout == TOKENS:
            height, width = _grid(hw, self.stride, x.shape[1])
            return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], height, width)
        return x

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}; {self.in_layout or 'image'} -> {self.out_layout}"


def split_timm_model(model: nn.Module) -> StagedBackbone:
    """Splits a timm model into one stage per entry of its ``feature_info``.

    Stage k runs the children after feature k-1's module up to and including feature k's
    module; its channels and reduction are the entry's ``num_chs`` and ``reduction``, its scale
    that reduction times the largest conv dilation in the stage (timm's ``output_stride``
    variants dilate instead of striding). Children after the last feature module (the head)
    stay in the model but in no stage. The split is verified on a probe image before it is
    returned: the chain must reproduce the features the model's own forward computes, at the
    declared channels and reductions.

    Args:
        model: a plain timm model (not a ``features_only`` wrapper), e.g. from
            ``create_timm_model``.

    Returns:
        A backbone whose ``state_dict()`` is the model's under ``model.``.

    Raises:
        UnsupportedBackboneError: the features are not the outputs of one chain of whole
            children (the message names the model and the reason).
    """
    if is_timm_vit(model):  # one resolution, features off any chain: cut at block groups
        return split_plain_vit(model)
    info = _feature_info(model)
    entries, ends = _forward_chain(model, info)
    modules, channels, reductions = info.module_name(), info.channels(), info.reduction()
    image = _probe(model, info)
    flags = [(m, m.training) for m in model.modules()]
    model.eval()  # a probe must neither update running statistics nor drop anything
    try:
        with torch.no_grad():
            outputs = _run_chain(model, entries, ends, image)
            seen = _hooked_features(model, modules, image)
    finally:
        for module, flag in flags:
            module.training = flag
    stages, starts = [], [0] + [end + 1 for end in ends[:-1]]
    hw, previous, layout_in = tuple(image.shape[-2:]), 1, None
    for k, (start, end, out) in enumerate(zip(starts, ends, outputs)):
        if len(seen[k]) != 1:
            raise _unsupported(model, f"feature module {modules[k]!r} runs {len(seen[k])} times "
                                      "in the model's forward, so it is no single link of a chain")
        if not _same(out, seen[k][0]):
            raise _unsupported(model, "running its children in registration order does not "
                                      f"reproduce feature {modules[k]!r} of its own forward (the "
                                      "forward does more than chain them, e.g. adds a position "
                                      "embedding)")
        layout = _layout(model, out, channels[k], modules[k])
        stride = reductions[k] / previous
        size = _map_size(model, out, layout, hw, stride, modules[k])
        if any(got not in (s // reductions[k], -(-s // reductions[k]))
               for s, got in zip(image.shape[-2:], size)):
            raise _unsupported(model, f"feature {modules[k]!r} declares reduction "
                                      f"{reductions[k]} but maps the {tuple(image.shape[-2:])} "
                                      f"probe to {size}")
        part = TimmStage(model, entries[start : end + 1], layout_in, layout, stride)
        stages.append(StageSpec("+".join(entries[start : end + 1]), channels[k], reductions[k],
                                part, scale=reductions[k] * conv_dilation(part.submodules())))
        hw, previous, layout_in = size, reductions[k], layout
    return StagedBackbone(model, stages)
