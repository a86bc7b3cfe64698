"""MMDetection adapter: importing it registers everything in mmdet's registries.

Registered: ``HybridBackbone`` and ``MobileNetV1`` (MODELS), ``CityPersonsDataset`` and
``SyntheticCityPersonsDataset`` (DATASETS), ``CityPersonsMetric`` (METRICS); and, through the
OpenMMLab layer it imports (``hybridkt_ext.for_openmmlab``), ``HybridKTHook``, which wires any
model whose backbone is a HybridBackbone. Configs trigger it with
``custom_imports=dict(imports=['hybridkt_ext.for_mmdet'], allow_failed_imports=False)``.

The adapter is thin: the hybrid backbone, the transfer step on the detector's own ``loss``, the
hook and the safe, atomic checkpoint handling are the OpenMMLab layer's; mmsegmentation is not
needed (its backbones are split too where it is installed and a config names them).
"""
try:
    import mmdet.models  # noqa: F401  (needs mmcv built with ops)
except ImportError as _err:  # one clear line instead of a traceback deep inside mmdet
    raise ImportError(
        "hybridkt_ext.for_mmdet needs MMDetection: pip install 'hybridkt_ext[mmdet]' "
        "(mmdet==3.3.0 beside mmcv==2.1.0 built with ops, mmengine==0.10.7; see "
        f"tools/setup_env.sh). Import failed with: {_err}"
    ) from None

import hybridkt_ext.for_openmmlab  # noqa: F401  (the hook, checkpoint safety, atomic writes)

from .backbone_stages import (NOT_A_CHAIN, mmdet_backbone_stages, register_stage_splitter,
                              supported_types)
from .citypersons_dataset import CityPersonsDataset, SyntheticCityPersonsDataset
from .citypersons_metric import CityPersonsMetric
from .hybrid_backbone import HybridBackbone
from . import layer_decay  # noqa: F401  (the stock layer-decay constructor, hybrid-aware)
from .mobilenet_v1 import MobileNetV1

__all__ = [
    "CityPersonsDataset", "CityPersonsMetric", "HybridBackbone", "mmdet_backbone_stages",
    "MobileNetV1", "NOT_A_CHAIN", "register_stage_splitter", "supported_types",
    "SyntheticCityPersonsDataset",
]
