"""Stages of the mmpretrain backbones mmseg and mmdet configs use: ConvNeXt and PoolFormer.

Configs name them ``mmpretrain.ConvNeXt`` / ``mmpretrain.PoolFormer``; mmpretrain is an
optional extra (``pip install 'hybridkt_ext[mmpretrain]'``). Both are chains whose returned
features pass a per-stage norm that the next stage does not see, hence the taps.
"""
from __future__ import annotations

from torch import nn

from hybridkt_ext.core import StagedBackbone, SubmoduleChain, UnsupportedBackboneError
from hybridkt_ext.core.stage_cutting import cut_into_stages

from .splitter_table import SplitterEntry


def split_mmpretrain_convnext(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """ConvNeXt: downsample_layers[i] + stages[i] per resolution; features pass ``norm{i}``."""
    if model.gap_before_final_norm:
        raise UnsupportedBackboneError(
            "mmpretrain.ConvNeXt(gap_before_final_norm=True) returns pooled vectors, not "
            "feature maps; set gap_before_final_norm=False for a dense-prediction backbone.")
    groups = [[f"downsample_layers.{i}", f"stages.{i}"] for i in range(len(model.stages))]
    return _cut(model, groups, tuple(model.out_indices))


def split_mmpretrain_poolformer(model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
    """PoolFormer: patch_embed + network[0], then each entry of ``network`` (blocks and the
    patch embeddings between them); features pass ``norm{idx}``."""
    groups = [["patch_embed", "network.0"]] + [[f"network.{i}"]
                                                for i in range(1, len(model.network))]
    return _cut(model, groups, tuple(model.out_indices))


def _cut(model: nn.Module, groups: list[list[str]],
         out_parts: tuple[int, ...]) -> tuple[StagedBackbone, tuple[int, ...]]:
    parts = [SubmoduleChain(model, names) for names in groups]
    taps = {i: SubmoduleChain(model, [f"norm{i}"]) for i in out_parts}
    return cut_into_stages(model, parts, ["+".join(g) for g in groups], out_parts, taps=taps)


# Entries of the mmseg and mmdet tables: both frameworks' configs name these types.
MMPRETRAIN_ENTRIES: tuple[SplitterEntry, ...] = (
    SplitterEntry("mmpretrain.models.backbones", "ConvNeXt", split_mmpretrain_convnext,
                  scope="mmpretrain"),
    SplitterEntry("mmpretrain.models.backbones", "PoolFormer", split_mmpretrain_poolformer,
                  scope="mmpretrain"),
)
