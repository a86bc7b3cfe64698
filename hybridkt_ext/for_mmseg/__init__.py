"""MMSegmentation adapter: importing it registers everything in mmseg's registries.

Registered: ``HybridBackbone`` and ``VGG16`` (MODELS, backbones), ``HybridKTHook`` (HOOKS),
``CheckedCityscapesDataset``, ``GTA5Dataset``, ``SyntheticCityscapesDataset`` and
``SyntheticGTA5Dataset`` (DATASETS). Configs trigger it with
``custom_imports=dict(imports=['hybridkt_ext.for_mmseg'], allow_failed_imports=False)``.
Importing it also makes mmengine read local checkpoints without running code from them
(``checkpoint_loading``), and ``backbone_stages`` splits every chain-structured backbone.
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

from .checkpoint_loading import trust_checkpoints_of_run, trust_local_checkpoints
from . import atomic_files  # noqa: F401  (mmengine's local writes become atomic)
from .backbone_stages import (NOT_A_CHAIN, mmseg_backbone_stages, register_stage_splitter,
                              split_mmseg_backbone, supported_types)
from .cityscapes_dataset import CheckedCityscapesDataset
from .cpu_distributed import prepare_cpu_distributed
from .gta5_dataset import GTA5Dataset
from .hybrid_backbone import HybridBackbone
from . import hybrid_encoder_decoder  # noqa: F401  (a removed name, refused with the new form)
from .hybrid_kt_hook import HybridKTHook, TeacherMismatchError, teacher_fingerprint
from .student_export import export_student_checkpoint, plain_student_config
from .synthetic_datasets import SyntheticCityscapesDataset, SyntheticGTA5Dataset
from .teacher_builder import build_teacher
from .transfer_wiring import install_transfer_step
from .vgg16 import VGG16

__all__ = [
    "CheckedCityscapesDataset", "NOT_A_CHAIN", "mmseg_backbone_stages", "register_stage_splitter",
    "supported_types", "GTA5Dataset", "HybridBackbone",
    "HybridKTHook",
    "SyntheticCityscapesDataset", "SyntheticGTA5Dataset", "install_transfer_step",
    "TeacherMismatchError", "VGG16", "build_teacher", "export_student_checkpoint",
    "plain_student_config", "prepare_cpu_distributed", "split_mmseg_backbone",
    "teacher_fingerprint", "trust_checkpoints_of_run",
    "trust_local_checkpoints",
]
