"""Stages of mmseg's plain ViTs: VisionTransformer, BEiT and MAE.

A plain ViT keeps one resolution throughout, so its stages are cut where the heads take
features: after each ``out_indices`` block. The stream between stages is the patch-token map
(B, C, H, W) and, when the model has one, the class token as (B, C, 1, 1) after it (see
``core.StageSpec``), so the next stage continues on exactly the tokens the plain model has. The
returned feature drops the class token, as the backbone does (or appends it as a (B, C)
vector with ``output_cls_token``).
"""
from __future__ import annotations

import torch
from torch import nn

from hybridkt_ext.core import StagedBackbone, UnsupportedBackboneError
from hybridkt_ext.core.stage_cutting import cut_into_stages, declared_probe_size

from .transformer_stages import to_map, to_tokens


def _has_cls(root: nn.Module) -> bool:
    # BEiT and MAE always run with their class token; VisionTransformer may drop it.
    return getattr(root, "with_cls_token", True)


class ViTSegment(nn.Module):
    """Blocks ``start..end-1`` of a plain ViT, the patch embedding first when ``start`` is 0."""

    def __init__(self, root: nn.Module, start: int, end: int) -> None:
        super().__init__()
        self._root = (root,)
        self.start, self.end = start, end

    def extra_repr(self) -> str:
        return f"{type(self._root[0]).__name__} blocks {self.start}..{self.end - 1}"

    def _embed(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        root = self._root[0]
        x, hw = root.patch_embed(images)
        x = torch.cat((root.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if hasattr(root, "_pos_embeding"):  # VisionTransformer (the name is mmseg's spelling)
            x = root._pos_embeding(x, hw, root.pos_embed)
            if not root.with_cls_token:
                x = x[:, 1:]
            if root.pre_norm:
                x = root.pre_ln(x)
        elif getattr(root, "pos_embed", None) is not None:  # MAE's absolute position embedding
            x = x + root.pos_embed
        return x, hw

    def forward(self, x):
        root = self._root[0]
        if self.start == 0:
            tokens, hw = self._embed(x)
        else:
            patches, hw = to_tokens(x[0] if isinstance(x, tuple) else x)
            tokens = torch.cat((x[1].flatten(2).transpose(1, 2), patches), 1) \
                if _has_cls(root) else patches
        for i in range(self.start, self.end):
            tokens = root.layers[i](tokens)
            if i == len(root.layers) - 1 and root.final_norm:
                tokens = root.norm1(tokens)
        if not _has_cls(root):
            return to_map(tokens, hw)
        cls = tokens[:, :1].transpose(1, 2).unsqueeze(-1)  # (B, C, 1, 1)
        return to_map(tokens[:, 1:], hw), cls


class ViTOutput(nn.Module):
    """The feature a plain ViT returns for a stage output: the map, and the class token if asked."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self._root = (root,)

    def forward(self, x):
        if not isinstance(x, tuple):
            return x
        if getattr(self._root[0], "output_cls_token", False):
            return [x[0], x[1].flatten(1)]
        return x[0]


def _split(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    if getattr(model, "out_origin", False):
        raise UnsupportedBackboneError(
            f"{type(model).__name__}(out_origin=True): the embedding output is returned before "
            "any block, which hybrid forward cannot switch at; set out_origin=False.")
    ends = sorted({i + 1 for i in model.out_indices} | {len(model.layers)})
    starts = [0] + ends[:-1]
    parts = [ViTSegment(model, a, b) for a, b in zip(starts, ends)]
    names = [f"blocks{a}-{b - 1}" for a, b in zip(starts, ends)]
    out_parts = tuple(ends.index(i + 1) for i in model.out_indices)
    tap = ViTOutput(model)
    return cut_into_stages(model, parts, names, out_parts, dilations=[1] * len(parts),
                           taps={k: tap for k in out_parts},
                           global_tokens=int(_has_cls(model)),
                           probe_size=declared_probe_size(model))


def split_mmseg_vit(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """VisionTransformer: stages end at the ``out_indices`` blocks (and the last block)."""
    return _split(model)


def split_mmseg_beit(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """BEiT and MAE (relative or absolute position embeddings): as ``split_mmseg_vit``."""
    return _split(model)
