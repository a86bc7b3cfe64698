"""The OpenMMLab layer: everything the mmseg and mmdet adapters share, needing mmengine and mmcv
but no downstream library (no mmseg, no mmdet).

``for_mmseg`` and ``for_mmdet`` are thin registrations of this layer in their library's
registries, so an mmdet user does not install mmsegmentation. Importing it registers
``HybridKTHook`` in mmengine's root HOOKS (which every library's registry searches), makes
mmengine read local checkpoints without running code from them (``checkpoint_loading``) and
its local writes atomic (``atomic_files``).
"""
try:
    import mmcv  # noqa: F401
    import mmengine  # noqa: F401
except ImportError as _err:  # one clear line instead of a traceback deep inside mmengine
    raise ImportError(
        "hybridkt_ext.for_openmmlab needs mmengine and mmcv: pip install 'hybridkt_ext[mmdet]' or "
        "'hybridkt_ext[mmseg]' (mmcv==2.1.0 built with ops, mmengine==0.10.7; see "
        f"tools/setup_env.sh). Import failed with: {_err}"
    ) from None

from .checkpoint_loading import trust_checkpoints_of_run, trust_local_checkpoints
from . import atomic_files  # noqa: F401  (mmengine's local writes become atomic)
from .backbone_source import BackboneSource
from .cpu_distributed import prepare_cpu_distributed
from .hybrid_backbone import OpenMMLabHybridBackbone
from .hybrid_kt_hook import HybridKTHook
from .splitter_table import SplitterTable
from .student_export import export_student_checkpoint, plain_student_config
from .transfer_wiring import install_transfer_step

__all__ = [
    "BackboneSource", "export_student_checkpoint", "HybridKTHook", "install_transfer_step",
    "OpenMMLabHybridBackbone", "plain_student_config", "prepare_cpu_distributed",
    "SplitterTable", "trust_checkpoints_of_run", "trust_local_checkpoints",
]
