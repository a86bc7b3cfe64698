"""1x1-conv adapters that carry a feature map from one network's space into the other's.

The paper adds "1x1 convolutions before switching in the forward path" and "in some cases ...
an interpolation step after the 1x1 convolution layer" because equal-scale stages of two
networks can still differ in size through padding conventions (or dilation).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FeatureAdapter(nn.Module):
    """A 1x1 convolution from ``in_channels`` to ``out_channels``, then resizing if needed.

    Global tokens (a ViT's class token, carried as (N, C, 1, 1) after the map, see
    ``StageSpec``) pass the same 1x1 convolution and are never resized. A receiving network
    that carries tokens the sender lacks gets the adapted map's spatial mean in their place; a
    receiver without tokens drops them.

    Args:
        in_channels: channels of the feature map that leaves one network.
        out_channels: channels the receiving network (or the student head) expects.
        out_tokens: global tokens the receiving network expects after the map.
    """

    def __init__(self, in_channels: int, out_channels: int, out_tokens: int = 0) -> None:
        super().__init__()
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(
                f"FeatureAdapter needs positive channel counts, got {in_channels} -> {out_channels}"
            )
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=True)
        self.out_tokens = out_tokens

    def forward(self, x: torch.Tensor | tuple[torch.Tensor, ...],
                size: tuple[int, int] | None = None) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Projects (N, C_in, H, W) to (N, C_out, H, W), then resizes to ``size`` when it differs.

        Projecting before resizing keeps the interpolation on the cheaper side when the
        receiving network is narrower, and matches the paper's order (conv, then interpolate).
        """
        feature_map, tokens = (x[0], x[1:]) if isinstance(x, tuple) else (x, ())
        y = self.proj(feature_map)
        if size is not None and tuple(y.shape[-2:]) != tuple(size):
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        if not self.out_tokens:
            return y
        adapted = [self.proj(t) for t in tokens[: self.out_tokens]]
        adapted += [y.mean(dim=(2, 3), keepdim=True)] * (self.out_tokens - len(adapted))
        return (y, *adapted)
