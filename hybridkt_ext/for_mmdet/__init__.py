"""MMDetection adapter: importing it registers everything in mmdet's registries.

Registered: ``HybridBackbone`` and ``MobileNetV1`` (MODELS), ``HybridKTHook`` (HOOKS, the mmseg
adapter's hook: it wires any model whose backbone is a HybridBackbone), ``CityPersonsDataset``
and ``SyntheticCityPersonsDataset`` (DATASETS), ``CityPersonsMetric`` (METRICS). Configs trigger it
with ``custom_imports=dict(imports=['hybridkt_ext.for_mmdet'], allow_failed_imports=False)``.

The adapter is thin: the hybrid backbone, the transfer step on the detector's own ``loss``, the
hook and the safe, atomic checkpoint handling are the OpenMMLab code of ``for_mmseg`` (which
needs mmsegmentation installed beside mmdet, as the project's set-up does).
"""
try:
    import mmdet.models  # noqa: F401  (needs mmcv built with ops)
    import mmseg.models  # noqa: F401
except ImportError as _err:  # one clear line instead of a traceback deep inside mmdet
    raise ImportError(
        "hybridkt_ext.for_mmdet needs MMDetection and MMSegmentation: pip install "
        "'hybridkt_ext[mmdet,mmseg]' (mmdet==3.3.0 and mmsegmentation==1.2.2 beside mmcv==2.1.0 "
        f"built with ops; see tools/setup_env.sh). Import failed with: {_err}"
    ) from None

from mmdet.registry import HOOKS

from hybridkt_ext.for_mmseg import HybridKTHook, install_transfer_step

from .backbone_stages import (NOT_A_CHAIN, mmdet_backbone_stages, register_stage_splitter,
                              supported_types)
from .citypersons_dataset import CityPersonsDataset, SyntheticCityPersonsDataset
from .citypersons_metric import CityPersonsMetric
from .hybrid_backbone import HybridBackbone
from .mobilenet_v1 import MobileNetV1

if HOOKS.get("HybridKTHook") is None:  # mmdet's scope cannot see the hook in mmseg's
    HOOKS.register_module(module=HybridKTHook)

__all__ = [
    "CityPersonsDataset", "CityPersonsMetric", "HybridBackbone", "HybridKTHook", "MobileNetV1",
    "NOT_A_CHAIN",
    "SyntheticCityPersonsDataset", "install_transfer_step", "mmdet_backbone_stages",
    "supported_types",
]
