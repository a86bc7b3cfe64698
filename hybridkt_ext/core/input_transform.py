"""The teacher's own input convention, derived from the image the student receives.

Frameworks normalise images before the backbone with the *student's* convention (detectron2:
BGR 0-255 minus pixel_mean; mmseg/torchvision: RGB, mean/std). A teacher trained elsewhere
expects its own. Undoing one affine normalisation and applying another is again a per-channel
affine map after a channel permutation, so it costs one fused multiply-add on the image.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

_CHANNEL_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class InputConvention:
    """How a network wants its input image.

    Attributes:
        mean: per-channel mean subtracted, in the network's channel order and pixel scale.
        std: per-channel divisor, same order and scale.
        channel_order: "RGB" or "BGR".
    """

    mean: Sequence[float] = (123.675, 116.28, 103.53)
    std: Sequence[float] = (58.395, 57.12, 57.375)
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        if self.channel_order not in _CHANNEL_ORDERS:
            raise ValueError(
                f"channel_order must be one of {_CHANNEL_ORDERS}, got {self.channel_order!r}"
            )
        for name in ("mean", "std"):
            values = getattr(self, name)
            if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") \
                    or len(values) != 3:
                raise ValueError(f"InputConvention: {name} needs 3 numbers (one per channel), "
                                 f"got {values!r}")
            # A NaN or inf here would turn every teacher input into NaN: fail at build time
            # instead of at the first non-finite loss.
            if any(isinstance(v, (str, bytes, bool)) or not isinstance(v, numbers.Real)
                   or not math.isfinite(v) for v in values):
                raise ValueError(f"InputConvention: {name} values must be finite numbers, "
                                 f"got {values!r}")
        if any(not s > 0 for s in self.std):
            raise ValueError(f"InputConvention: std values must be positive, got {self.std}")


class TeacherInputTransform(nn.Module):
    """Maps an image normalised with the student's convention to the teacher's.

    x_teacher[c] = x_student[p(c)] * scale[c] + shift[c], where p swaps RGB/BGR if the orders
    differ. The identity case is detected once and skipped at run time.
    """

    def __init__(self, student: InputConvention, teacher: InputConvention) -> None:
        super().__init__()
        swap = student.channel_order != teacher.channel_order
        perm = [2, 1, 0] if swap else [0, 1, 2]
        s_mean = torch.tensor(student.mean, dtype=torch.float64)[perm]
        s_std = torch.tensor(student.std, dtype=torch.float64)[perm]
        t_mean = torch.tensor(teacher.mean, dtype=torch.float64)
        t_std = torch.tensor(teacher.std, dtype=torch.float64)
        # raw = x_s * s_std + s_mean; x_t = (raw - t_mean) / t_std
        scale = s_std / t_std
        shift = (s_mean - t_mean) / t_std
        self.swap = swap
        self.identity = not swap and bool((scale - 1).abs().max() < 1e-12) \
            and bool(shift.abs().max() < 1e-12)
        # Buffers (not parameters): they move with .to() but are not trained or exported.
        self.register_buffer("scale", scale.float().view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.float().view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in the student's convention -> (N, 3, H, W) in the teacher's."""
        if self.identity:
            return x
        if x.shape[1] != 3:
            raise ValueError(
                f"the teacher input transform expects 3-channel images, got {x.shape[1]} "
                "channels; use identical student/teacher conventions for other inputs"
            )
        if self.swap:
            x = x.flip(1)
        return torch.addcmul(self.shift.to(x.dtype), x, self.scale.to(x.dtype))
