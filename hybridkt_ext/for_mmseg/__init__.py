"""MMSegmentation adapter: importing it registers everything in mmseg's registries.

Registered: ``HybridBackbone`` and ``VGG16`` (MODELS, backbones), ``CheckedCityscapesDataset``,
``GTA5Dataset``, ``SyntheticCityscapesDataset`` and ``SyntheticGTA5Dataset`` (DATASETS); and,
through the OpenMMLab layer it imports (``hybridkt_ext.for_openmmlab``: the hook, the wiring,
checkpoint safety, the tools), ``HybridKTHook``. Configs trigger it with
``custom_imports=dict(imports=['hybridkt_ext.for_mmseg'], allow_failed_imports=False)``.
``backbone_stages`` splits every chain-structured mmseg backbone.
"""
try:
    import mmcv  # noqa: F401
    import mmengine  # noqa: F401
    import mmseg.models  # noqa: F401  (needs mmcv built with ops)
except ImportError as _err:  # one clear line instead of a traceback deep inside mmseg
    raise ImportError(
        "hybridkt_ext.for_mmseg needs MMSegmentation: pip install 'hybridkt_ext[mmseg]' "
        "(mmcv==2.1.0 built with ops, mmengine==0.10.7, mmsegmentation==1.2.2; see "
        f"tools/setup_env.sh). Import failed with: {_err}"
    ) from None

import hybridkt_ext.for_openmmlab  # noqa: F401  (the hook, checkpoint safety, atomic writes)

from .backbone_stages import (NOT_A_CHAIN, mmseg_backbone_stages, register_stage_splitter,
                              split_mmseg_backbone, supported_types)
from .cityscapes_dataset import CheckedCityscapesDataset
from .gta5_dataset import GTA5Dataset
from .hybrid_backbone import HybridBackbone, build_teacher
from . import layer_decay  # noqa: F401  (the stock layer-decay constructors, hybrid-aware)
from . import hybrid_encoder_decoder  # noqa: F401  (a removed name, refused with the new form)
from .synthetic_datasets import SyntheticCityscapesDataset, SyntheticGTA5Dataset
from .vgg16 import VGG16

__all__ = [
    "build_teacher", "CheckedCityscapesDataset", "GTA5Dataset", "HybridBackbone",
    "mmseg_backbone_stages", "NOT_A_CHAIN", "register_stage_splitter", "split_mmseg_backbone",
    "supported_types", "SyntheticCityscapesDataset", "SyntheticGTA5Dataset", "VGG16",
]
