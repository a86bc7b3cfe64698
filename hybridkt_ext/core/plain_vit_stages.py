"""Stages of plain ViTs from timm and torchvision: block groups, tokens as maps between them.

A plain ViT keeps one resolution, so no downsampling layer marks its stages; they are cut at
block groups instead (``depth / 4`` blocks each by default, or ``vit_stages``: a number of
groups or the explicit block indices that end each group). Between stages the patch tokens
travel as a (B, C, H, W) map and the prefix tokens (class token, DINOv2-style registers:
timm's ``num_prefix_tokens``) follow it as (B, C, 1, 1) each, the ``global_tokens`` mechanism
of ``StageSpec`` that mmseg's ViTs use (``for_openmmlab/vit_stages.py``), so the next stage
continues on exactly the plain model's tokens. The last stage ends with the model's final norm:
its output is the model's ``forward_features`` without the prefix tokens.

Position embeddings are the model's own: timm resamples them per input when the model is
built with ``dynamic_img_size=True``; otherwise (and for torchvision, which has no such option)
any other input size is refused with an error naming the fix.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .errors import UnsupportedBackboneError
from .stage_cutting import cut_into_stages, declared_probe_size
from .stages import StagedBackbone, feature_map

# A model built by ``build_zoo_model`` with ``vit_stages=...`` keeps the choice here until it
# is split: building and splitting are separate calls in every adapter.
VIT_STAGES_ATTRIBUTE = "hybridkt_vit_stages"


def is_timm_vit(model: nn.Module) -> bool:
    """Whether ``model`` is timm's plain ``VisionTransformer`` (ViT, DeiT, DINOv2, ...)."""
    try:  # timm is optional: torchvision ViTs split without it
        from timm.models.vision_transformer import VisionTransformer
    except ImportError:
        return False
    return isinstance(model, VisionTransformer)


def block_groups(depth: int, vit_stages: int | Sequence[int] | None, where: str
                 ) -> list[tuple[int, int]]:
    """``(start, end)`` block ranges of the stages of a ``depth``-block ViT.

    Args:
        vit_stages: None (4 groups, or ``depth`` when shallower), a number of equal groups,
            or the indices of the blocks that end each group (the last block is always an end).
        where: the model, for messages.
    """
    if vit_stages is None:
        vit_stages = min(4, depth)
    if isinstance(vit_stages, int) and not isinstance(vit_stages, bool):
        if not 1 <= vit_stages <= depth:
            raise ValueError(f"{where}: vit_stages={vit_stages} must be between 1 and the "
                             f"model's depth {depth}.")
        ends = [round(depth * (k + 1) / vit_stages) for k in range(vit_stages)]
    else:
        indices = list(vit_stages)
        if not indices or any(not isinstance(i, int) or not 0 <= i < depth for i in indices) \
                or indices != sorted(set(indices)):
            raise ValueError(f"{where}: vit_stages={vit_stages!r} must be a number of block "
                             f"groups or increasing block indices in 0..{depth - 1} that end "
                             "each stage.")
        ends = sorted({i + 1 for i in indices} | {depth})
    return list(zip([0] + ends[:-1], ends))


class _MapOnly(nn.Module):
    """The feature a plain ViT stage returns: its map, without the prefix tokens."""

    def forward(self, x):
        return feature_map(x)


class PlainViTSegment(nn.Module):
    """Blocks ``start..end-1`` of a timm or torchvision ViT, NCHW map (+ prefix tokens) in/out.

    Args:
        root: the ViT (unregistered, found at every call, as in ``SubmoduleChain``).
        start, end: the block range; the patch embedding runs first when ``start`` is 0, the
            final norm last when ``end`` is the depth.
    """

    def __init__(self, root: nn.Module, start: int, end: int) -> None:
        super().__init__()
        self._root = (root,)
        self.start, self.end = start, end
        self.timm = is_timm_vit(root)

    def extra_repr(self) -> str:
        return f"{type(self._root[0]).__name__} blocks {self.start}..{self.end - 1}"

    def _blocks(self) -> Sequence[nn.Module]:
        root = self._root[0]
        return root.blocks if self.timm else root.encoder.layers

    def _prefix(self) -> int:
        root = self._root[0]
        return root.num_prefix_tokens if self.timm else 1

    def _embed(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        root = self._root[0]
        if self.timm:
            embed = root.patch_embed
            if not root.dynamic_img_size and tuple(images.shape[-2:]) != tuple(embed.img_size):
                raise ValueError(
                    f"timm {type(root).__name__} was built for {tuple(embed.img_size)} images "
                    f"and got {tuple(images.shape[-2:])}; create it with dynamic_img_size=True "
                    "(a teacher key) so that timm resamples its position embedding, or with "
                    "img_size set to the training size.")
            x = embed(images)
            # dynamic_img_size: patch_embed returns (B, H, W, C); otherwise (B, H*W, C).
            hw = tuple(x.shape[1:3]) if x.dim() == 4 else \
                (images.shape[-2] // embed.patch_size[0], images.shape[-1] // embed.patch_size[1])
            x = root.norm_pre(root.patch_drop(root._pos_embed(x)))
            return x, hw
        if tuple(images.shape[-2:]) != (root.image_size, root.image_size):
            raise ValueError(
                f"torchvision VisionTransformer(image_size={root.image_size}) got "
                f"{tuple(images.shape[-2:])} images: its position embedding has one entry per "
                "patch of image_size and torchvision does not resample it; build the teacher "
                "with image_size set to the training size (a teacher key).")
        x = root._process_input(images)
        x = torch.cat((root.class_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = root.encoder.dropout(x + root.encoder.pos_embedding)
        side = root.image_size // root.patch_size
        return x, (side, side)

    def forward(self, x):
        root, prefix = self._root[0], self._prefix()
        if self.start == 0:
            tokens, hw = self._embed(x)
        else:
            patches = feature_map(x)
            hw = tuple(patches.shape[2:])
            carried = [t.flatten(2).transpose(1, 2) for t in x[1:]] if prefix else []
            tokens = torch.cat(carried + [patches.flatten(2).transpose(1, 2)], 1)
        blocks = self._blocks()
        for i in range(self.start, self.end):
            tokens = blocks[i](tokens)
        if self.end == len(blocks):
            tokens = root.norm(tokens) if self.timm else root.encoder.ln(tokens)
        grid = tokens[:, prefix:].transpose(1, 2).reshape(tokens.shape[0], -1, *hw)
        if not prefix:
            return grid.contiguous()
        carried = tokens[:, :prefix].transpose(1, 2).unsqueeze(-1)  # (B, C, prefix, 1)
        return (grid.contiguous(), *(carried[:, :, k:k + 1] for k in range(prefix)))


def split_plain_vit(model: nn.Module, vit_stages: int | Sequence[int] | None = None
                    ) -> StagedBackbone:
    """Splits a timm ``VisionTransformer`` or torchvision ``VisionTransformer`` at block groups.

    Args:
        model: the ViT; ``vit_stages`` defaults to its ``hybridkt_vit_stages`` attribute
            (set by ``build_zoo_model``), else 4 groups.
        vit_stages: see ``block_groups``.

    Raises:
        UnsupportedBackboneError: a timm ViT variant whose forward does more than embed, run
            its blocks and norm (attention pooling before features, a rotary embedding), or a
            non-square ``img_size``.
        ValueError: a bad ``vit_stages``.
    """
    where = f"{type(model).__module__.split('.')[0]} {type(model).__name__}"
    if vit_stages is None:
        vit_stages = getattr(model, VIT_STAGES_ATTRIBUTE, None)
    depth = len(model.blocks if is_timm_vit(model) else model.encoder.layers)
    if is_timm_vit(model) and getattr(model, "rope", None) is not None:
        raise UnsupportedBackboneError(
            f"{where} uses a rotary position embedding that its blocks take as an extra "
            "argument, which block-group stages do not carry; choose a ViT with absolute "
            "position embeddings (vit_*, deit_*, *_dinov2).")
    groups = block_groups(depth, vit_stages, where)
    parts = [PlainViTSegment(model, a, b) for a, b in groups]
    names = [f"blocks{a}-{b - 1}" for a, b in groups]
    prefix = model.num_prefix_tokens if is_timm_vit(model) else 1
    tap = _MapOnly() if prefix else None
    staged, _ = cut_into_stages(model, parts, names, out_parts=range(len(parts)),
                                dilations=[1] * len(parts),
                                taps={k: tap for k in range(len(parts))} if tap else None,
                                global_tokens=prefix, probe_size=declared_probe_size(model))
    return staged
