"""Cutting a backbone's forward chain into stages, with channels and reductions measured.

A backbone that is one chain (each part consumes the previous part's single output) is
described by its parts in forward order: ResNet's stem and layers, MobileNet's layers, a
transformer's stages or blocks. ``cut_into_stages`` groups the parts into stages that end

* right before a part that lowers the resolution, or that raises the dilation instead (a
  DeepLab-style dilated network still starts a stage there, at the same reduction), and
* right after every part whose output the backbone returns, so each head feature is a stage
  output the hybrid paths can produce.

Channels and reductions come from running a zero probe through the parts (eval mode, no
autograd, every training flag restored), not from per-model tables, so a width multiplier or a
changed stride is measured rather than assumed.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .errors import UnsupportedBackboneError
from .stages import StagedBackbone, StageSpec, feature_map


def probe_shapes(root: nn.Module, parts: Sequence[nn.Module], in_channels: int = 3,
                 probe_size: int = 64) -> list[tuple[int, int, int]]:
    """Runs a zero image through ``parts`` one at a time; returns each output's (C, H, W).

    Args:
        root: the module that owns the parts' weights (for device, dtype and training flags).
        parts: callables in forward order, each mapping (N, C, H, W) to (N, C', H', W').
        in_channels: channels of the probe image.
        probe_size: its height and width; must leave at least 2x2 pixels at the last part.

    Raises:
        ValueError: a part returns something other than a 4-D tensor, or the probe shrinks
            below 2x2 pixels (which would hide later downsampling).
    """
    reference = next(root.parameters(), None)
    if reference is None:
        reference = next(root.buffers(), torch.zeros(()))
    # Save every flag, not just the top one: a frozen BN kept in eval must stay in eval.
    flags = [(m, m.training) for m in root.modules()]
    root.eval()
    shapes = []
    try:
        with torch.no_grad():
            x = torch.zeros((1, in_channels, probe_size, probe_size), device=reference.device,
                            dtype=reference.dtype)
            for index, part in enumerate(parts):
                x = part(x)
                what = f"part [{index}] ({type(part).__name__})"
                out = feature_map(x) if isinstance(x, tuple) else x
                if not isinstance(out, torch.Tensor) or out.dim() != 4:
                    shape = tuple(out.shape) if isinstance(out, torch.Tensor) \
                        else type(out).__name__
                    raise ValueError(f"stage parts must output (N, C, H, W) feature maps, but "
                                     f"{what} outputs {shape}.")
                if min(out.shape[2:]) < 2:
                    raise ValueError(
                        f"the {probe_size}x{probe_size} probe shrinks to {out.shape[2]}x"
                        f"{out.shape[3]} at {what}, which hides any later downsampling; use a "
                        "probe_size of at least twice the total stride.")
                shapes.append((out.shape[1], out.shape[2], out.shape[3]))
    finally:
        for module, training in flags:
            module.training = training
    return shapes


def declared_probe_size(model: nn.Module, default: int = 64) -> int:
    """The probe side for ``model``: its declared square ``img_size`` if it has one, else
    ``default``.

    Position tables with one entry per patch of ``img_size`` (mmseg's BEiT and MAE) refuse
    any other input, so a fixed small probe cannot run them; models that interpolate (mmseg's
    VisionTransformer) are probed at their own size too, so every probe of a model agrees.
    """
    # timm's ViTs keep it on their patch embedding, torchvision's call it image_size.
    declared = (getattr(model, "img_size", None), getattr(model, "image_size", None),
                getattr(getattr(model, "patch_embed", None), "img_size", None))
    size = next((s for s in declared if s is not None), None)
    if isinstance(size, int):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(s, int) for s in size)):
        return default  # no declared size, or one that is not an image side
    height, width = size
    if height != width:
        raise UnsupportedBackboneError(
            f"{type(model).__name__}(img_size={tuple(size)}): the stage probe is square, and "
            "this backbone's position tables accept only its own non-square size; use a square "
            "img_size.")
    return int(height)


def conv_dilation(modules: Sequence[nn.Module]) -> int:
    """The largest dilation of any ``nn.Conv2d`` inside ``modules`` (1 when there is none)."""
    dilations = [max(m.dilation) if isinstance(m.dilation, tuple) else m.dilation
                 for module in modules for m in module.modules() if isinstance(m, nn.Conv2d)]
    return max(dilations, default=1)


def _part_dilation(part: nn.Module) -> int:
    submodules = getattr(part, "submodules", None)
    return conv_dilation(submodules()) if callable(submodules) else 1


def cut_into_stages(model: nn.Module, parts: Sequence[nn.Module], names: Sequence[str],
                    out_parts: Sequence[int], dilations: Sequence[int] | None = None,
                    taps: dict[int, nn.Module] | None = None, global_tokens: int = 0,
                    in_channels: int = 3, probe_size: int = 64
                    ) -> tuple[StagedBackbone, tuple[int, ...]]:
    """Groups a chain of parts into stages (see the module docstring for the cut rules).

    Args:
        model: the backbone owning every part's weights; it becomes ``StagedBackbone.model``.
        parts: callables in forward order, (N, C, H, W) -> (N, C', H', W'); they must not be
            registered submodules of ``model`` (state dicts stay the model's own).
        names: one name per part, joined with ``+`` into stage names.
        out_parts: indices of the parts whose outputs the backbone returns, in return order.
        dilations: the dilation each part runs at; a rise starts a stage. Default: the
            largest conv dilation of each part's ``submodules()`` (``SubmoduleChain`` parts),
            1 for parts that do not list their modules.
        taps: part index -> module mapping that part's output to the returned feature.
        global_tokens: global tokens every part output carries after its map (see
            ``StageSpec``).
        in_channels, probe_size: the probe image (see ``probe_shapes``).

    Returns:
        The staged backbone and, for each of ``out_parts``, the stage that ends with it.

    Raises:
        ValueError: mismatched argument lengths or out-of-range indices.
    """
    n = len(parts)
    dilations = list(dilations) if dilations is not None else [_part_dilation(p) for p in parts]
    if not parts or len(names) != n or len(dilations) != n:
        raise ValueError(f"cut_into_stages needs one name and dilation per part: {n} parts, "
                         f"{len(names)} names, {len(dilations)} dilations.")
    bad = [i for i in out_parts if not 0 <= i < n]
    if bad or not out_parts:
        raise ValueError(f"out_parts {tuple(out_parts)} must name parts in 0..{n - 1}.")
    taps = dict(taps or {})
    shapes = probe_shapes(model, parts, in_channels, probe_size)
    heights_in = [probe_size] + [h for _, h, _ in shapes[:-1]]
    starts = {0}
    for i in range(1, n):
        downsamples = round(heights_in[i] / shapes[i][1]) >= 2
        if downsamples or dilations[i] > dilations[i - 1]:
            starts.add(i)
    starts |= {i + 1 for i in out_parts if i + 1 < n}
    edges = sorted(starts) + [n]
    stages, part_stage = [], {}
    for k, (start, end) in enumerate(zip(edges, edges[1:])):
        channels, height, _ = shapes[end - 1]
        reduction = round(probe_size / height)
        group = list(parts[start:end])
        module = group[0] if len(group) == 1 else nn.Sequential(*group)
        stages.append(StageSpec("+".join(names[start:end]), channels, reduction, module,
                                scale=reduction * dilations[end - 1], tap=taps.get(end - 1),
                                global_tokens=global_tokens))
        part_stage.update({i: k for i in range(start, end)})
    return StagedBackbone(model, stages), tuple(part_stage[i] for i in out_parts)
