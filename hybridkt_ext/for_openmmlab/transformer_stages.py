"""Stages of mmseg's hierarchical transformers: MiT (SegFormer), Swin, MSCAN (SegNeXt), Twins.

Each runs a chain of stages over tokens (B, H*W, C) with a known (H, W); the parts below run
one stage each and convert to (B, C, H, W) at its boundary, an exact reshape, so adapters and
heads see feature maps. Every part looks its modules up on the backbone at each call (as
``SubmoduleChain`` does), so a framework replacing a norm layer after build is followed. The
part forwards repeat the backbones' own ``forward`` loops step for step, which the stage
contract test checks output for output against the plain backbone.
"""
from __future__ import annotations

import torch
from torch import nn

from hybridkt_ext.core import StagedBackbone
from hybridkt_ext.core.stage_cutting import cut_into_stages


def to_tokens(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, C, H, W) -> (B, H*W, C) and (H, W)."""
    return x.flatten(2).transpose(1, 2).contiguous(), (x.shape[2], x.shape[3])


def to_map(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W), contiguous as the backbones return it."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw).contiguous()


class _Part(nn.Module):
    """One stage of a backbone, found on the (unregistered) backbone at every call."""

    def __init__(self, root: nn.Module, index: int) -> None:
        super().__init__()
        self._root = (root,)
        self.index = index

    @property
    def root(self) -> nn.Module:
        return self._root[0]

    def extra_repr(self) -> str:
        return f"{type(self.root).__name__} stage {self.index}"


class MiTStage(_Part):
    """MixVisionTransformer stage i: overlapping patch embed, blocks, norm (norm in-stream)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embed, blocks, norm = self.root.layers[self.index]
        x, hw = embed(x)
        for block in blocks:
            x = block(x, hw)
        return to_map(norm(x), hw)


class SwinStage(_Part):
    """Swin stage k: the previous stage's patch merging (or the patch embed), then its blocks.

    mmseg's ``SwinBlockSequence`` ends with the downsampling of the *next* resolution; the
    paper's stages end right before a downsampling, so the merging moves to the next part.
    The returned feature is the stage's norm of this output (``SwinOutputNorm``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        root = self.root
        if self.index == 0:
            x, hw = root.patch_embed(x)
            if root.use_abs_pos_embed:
                x = x + root.absolute_pos_embed
            x = root.drop_after_pos(x)
        else:
            x, hw = to_tokens(x)
            x, hw = root.stages[self.index - 1].downsample(x, hw)
        for block in root.stages[self.index].blocks:
            x = block(x, hw)
        return to_map(x, hw)


class SwinOutputNorm(_Part):
    """``norm{k}`` of Swin, applied to stage k's output as the backbone does for out_indices."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, hw = to_tokens(x)
        return to_map(getattr(self.root, f"norm{self.index}")(tokens), hw)


class MSCANStage(_Part):
    """MSCAN stage i: patch embed, blocks, norm (norm in-stream)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        root, n = self.root, self.index + 1
        x, height, width = getattr(root, f"patch_embed{n}")(x)
        for block in getattr(root, f"block{n}"):
            x = block(x, height, width)
        return to_map(getattr(root, f"norm{n}")(x), (height, width))


class TwinsStage(_Part):
    """PCPVT / SVT stage i: patch embed, blocks with the position encoding after the first."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        root, i = self.root, self.index
        x, hw = root.patch_embeds[i](x)
        x = root.position_encoding_drops[i](x)
        for j, block in enumerate(root.layers[i]):
            x = block(x, hw)
            if j == 0:
                x = root.position_encodings[i](x, hw)
        if root.norm_after_stage:
            x = root.norm_list[i](x)
        return to_map(x, hw)


def _split(model: nn.Module, part_cls: type[_Part], count: int, out_parts: tuple[int, ...],
           taps: dict[int, nn.Module] | None = None) -> tuple[StagedBackbone, tuple[int, ...]]:
    parts = [part_cls(model, i) for i in range(count)]
    names = [f"stage{i}" for i in range(count)]
    return cut_into_stages(model, parts, names, out_parts, dilations=[1] * count, taps=taps)


def split_mmseg_mit(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """MixVisionTransformer (SegFormer's MiT-B0..B5): one stage per resolution."""
    return _split(model, MiTStage, len(model.layers), tuple(model.out_indices))


def split_mmseg_swin(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """SwinTransformer: one stage per resolution; returned features pass ``norm{k}``."""
    out = tuple(model.out_indices)
    return _split(model, SwinStage, len(model.stages), out,
                  taps={k: SwinOutputNorm(model, k) for k in out})


def split_mmseg_mscan(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """MSCAN (SegNeXt): one stage per resolution; the backbone returns all of them."""
    return _split(model, MSCANStage, model.num_stages, tuple(range(model.num_stages)))


def split_mmseg_twins(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """Twins PCPVT and SVT: one stage per resolution."""
    return _split(model, TwinsStage, len(model.depths), tuple(model.out_indices))
