"""Stages of detectron2's plain ViT (``detectron2.modeling.backbone.vit.ViT``, ViTDet's ``net``).

ViTDet's ViT keeps one resolution and has no class token: its blocks run on (B, H, W, C) maps,
so a stage is a group of blocks (``depth / 4`` each, ``plain_vit_stages.block_groups``) with a
permute to NCHW at each end. The last stage is named by the ViT's ``out_feature``
(``last_feat``): ``SimpleFeaturePyramid`` reads that key from the hybrid bottom-up as it did
from the plain ViT.
"""
from __future__ import annotations

import torch
from detectron2.modeling.backbone.vit import ViT, get_abs_pos
from torch import nn

from ..core import StagedBackbone
from ..core.plain_vit_stages import block_groups
from ..core.stage_cutting import cut_into_stages


class ViTDetSegment(nn.Module):
    """Blocks ``start..end-1`` of a detectron2 ViT, NCHW in and out (patch embedding at 0)."""

    def __init__(self, root: ViT, start: int, end: int) -> None:
        super().__init__()
        self._root = (root,)  # unregistered: the state dict stays the ViT's own
        self.start, self.end = start, end

    def extra_repr(self) -> str:
        return f"ViT blocks {self.start}..{self.end - 1}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        root = self._root[0]
        if self.start == 0:
            x = root.patch_embed(x)
            if root.pos_embed is not None:
                x = x + get_abs_pos(root.pos_embed, root.pretrain_use_cls_token,
                                    (x.shape[1], x.shape[2]))
        else:
            x = x.permute(0, 2, 3, 1)
        for i in range(self.start, self.end):
            x = root.blocks[i](x)
        return x.permute(0, 3, 1, 2)


def split_detectron2_vit(vit: ViT) -> StagedBackbone:
    """Four block groups of ViTDet's ViT (state dict under ``model.``), the last one named by
    its out feature."""
    groups = block_groups(len(vit.blocks), None, "detectron2 ViT")
    names = [f"blocks{a}-{b - 1}" for a, b in groups[:-1]] + [vit._out_features[0]]
    parts = [ViTDetSegment(vit, a, b) for a, b in groups]
    # The probe must cover whole windows: ViTDet pads to its window size, any size runs.
    staged, _ = cut_into_stages(vit, parts, names, out_parts=range(len(parts)),
                                dilations=[1] * len(parts),
                                probe_size=max(64, 2 * vit.patch_embed.proj.stride[0]))
    return staged
