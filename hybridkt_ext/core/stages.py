"""Stage descriptions: a backbone seen as a sequence of stages, each ending before a downsampling.

In the spirit of timm's ``FeatureInfo``: a backbone declares its stages (name, channels,
reduction, module) once, and every consumer (the hybrid forward engine, FitNet/AT, the
framework adapters) works on that declaration. ``check_stage_contract`` verifies a declaration
against what the stages really output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class StageSpec:
    """One stage of a backbone.

    Stage outputs are (N, C, H, W) feature maps: stages of token-layout networks
    (transformers) convert at their boundary, so adapters and heads never see another layout.
    A stage whose network carries global tokens besides its patch tokens (a ViT's class token)
    outputs the tuple ``(feature_map, token_1, ...)`` with each token as (N, C, 1, 1), so the
    next stage gets them back exactly; ``feature_map()`` picks the map.

    Attributes:
        name: human-readable name, e.g. ``"layer2"`` or ``"features.7-13"``.
        channels: channels of the stage's output feature map.
        reduction: total stride of the stage's output relative to the input image.
        module: the callable that maps the previous stage's output to this stage's output,
            usually a ``SubmoduleChain`` naming modules owned by the wrapped model. It is not
            registered as a submodule anywhere, so state dicts keep the plain model's layout.
        scale: the reduction the stage would have without dilation (a DeepLab D8 ResNet's
            stages: reductions 4, 8, 8, 8, scales 4, 8, 16, 32). Stages of two networks pair
            by scale. Defaults to ``reduction``.
        tap: maps the stage output to the feature the backbone returns for it, where the two
            differ (Swin and ConvNeXt normalise their returned features but feed the next
            stage the unnormalised ones; a ViT returns its map without the class token); None
            when the output itself is returned.
        global_tokens: how many global tokens follow the feature map in the output (0: the
            output is a plain tensor).
    """

    name: str
    channels: int
    reduction: int
    module: nn.Module
    scale: int | None = None
    tap: nn.Module | None = None
    global_tokens: int = 0

    def __post_init__(self) -> None:
        if self.scale is None:
            object.__setattr__(self, "scale", self.reduction)

    def feature(self, output: torch.Tensor) -> torch.Tensor:
        """The backbone's returned feature for this stage's ``output``."""
        return output if self.tap is None else self.tap(output)


StageOutput = torch.Tensor | tuple[torch.Tensor, ...]


def feature_map(output: StageOutput) -> torch.Tensor:
    """The (N, C, H, W) map of a stage output (the output itself, or its first element)."""
    return output if isinstance(output, torch.Tensor) else output[0]


class SubmoduleChain(nn.Module):
    """Runs submodules of a root model, looked up by dotted name at every call.

    A stage must not hold direct references to the model's children: frameworks replace
    modules after a model is built (mmengine reverts SyncBN on one process,
    ``convert_sync_batchnorm`` does the opposite for DDP), and a stage would then keep running
    the discarded module. Looking the names up per call costs a few dict lookups.

    Args:
        root: the model owning the submodules; kept unregistered (it is registered once, as
            ``StagedBackbone.model``).
        names: dotted submodule names in forward order, e.g. ``["conv1", "bn1", "layer1"]``.
    """

    def __init__(self, root: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        if not names:
            raise ValueError("a SubmoduleChain needs at least one submodule name")
        for name in names:
            root.get_submodule(name)  # fail at build time, not at the first step
        self._root = (root,)
        self.names = tuple(names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        root = self._root[0]
        for name in self.names:
            x = root.get_submodule(name)(x)
        return x

    def submodules(self) -> list[nn.Module]:
        """The current modules behind ``names`` (e.g. to scan them for channels)."""
        return [self._root[0].get_submodule(n) for n in self.names]

    def extra_repr(self) -> str:
        return ", ".join(self.names)


class StagedBackbone(nn.Module):
    """A model plus the declaration of its stages.

    ``model`` is registered as the only submodule, so ``state_dict()`` is the plain model's
    state dict under the prefix ``model.`` (student export strips exactly that). The stage
    callables reference parts of ``model``; they are kept in a tuple so that nn.Module does
    not register them a second time.

    Args:
        model: the module that owns every parameter of the stages (it may own more, e.g. a
            classifier head that the stages do not use).
        stages: the stage declarations, in forward order.
    """

    def __init__(self, model: nn.Module, stages: Sequence[StageSpec]) -> None:
        super().__init__()
        if len(stages) == 0:
            raise ValueError("StagedBackbone needs at least one stage; got an empty list.")
        self.model = model
        self._stages: tuple[StageSpec, ...] = tuple(stages)
        self.training = model.training  # start in the model's mode (a frozen teacher stays eval)

    @property
    def stage_specs(self) -> tuple[StageSpec, ...]:
        return self._stages

    @property
    def num_stages(self) -> int:
        return len(self._stages)

    def stage(self, index: int) -> nn.Module:
        return self._stages[index].module

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Runs all stages; returns every stage output (N, C_i, H/r_i, W/r_i)."""
        outputs = []
        for spec in self._stages:
            x = spec.module(x)
            outputs.append(x)
        return outputs


def check_stage_contract(backbone: StagedBackbone, image_size: tuple[int, int] = (64, 64),
                         in_channels: int = 3) -> None:
    """Runs a dummy batch and raises if any stage's channels or reduction differ from its spec.

    The reduction check allows the ceil/floor rounding of odd sizes: an output of size
    ``ceil(H / r)`` or ``floor(H / r)`` both match reduction ``r``.
    """
    height, width = image_size
    # Restore each module's own flag: a blanket train() would unfreeze a frozen teacher's BN.
    flags = [(m, m.training) for m in backbone.modules()]
    backbone.eval()
    try:
        param = next(backbone.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            outputs = backbone(torch.zeros(1, in_channels, height, width, device=device))
    finally:
        for module, flag in flags:
            module.training = flag
    for spec, out in zip(backbone.stage_specs, outputs):
        out = feature_map(out)
        if out.shape[1] != spec.channels:
            raise AssertionError(
                f"stage {spec.name!r} declares {spec.channels} channels but outputs {out.shape[1]}"
            )
        for size, got in ((height, out.shape[2]), (width, out.shape[3])):
            if got not in (size // spec.reduction, -(-size // spec.reduction)):
                raise AssertionError(
                    f"stage {spec.name!r} declares reduction {spec.reduction} but maps size "
                    f"{size} to {got}"
                )
