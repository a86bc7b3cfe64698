"""Framework-neutral core (torch + torchvision only)."""
from .feature_adapters import FeatureAdapter
from .balance import BALANCE_MODES, BalancedLoss, LossBalancer, NonFiniteLossError
from .teacher_weights import TeacherCheckpointError, load_teacher_weights, read_checkpoint
from .checkpoint_file import (CheckpointFileError, CheckpointNotFoundError,
                              UntrustedCheckpointError, allow_framework_checkpoints,
                              read_checkpoint_file)
from .errors import (CheckpointMismatchError, HybridKTError, HybridTrainingError,
                     TeacherMismatchError, UnsupportedBackboneError)
from .atomic_files import replace_atomically, save_atomically, write_text_atomically
from .export import export_student_state_dict
from .activation_boundary import ActivationBoundaryLoss
from .channel_wise_distillation import ChannelWiseDivergenceLoss
from .factor_transfer import FactorTransferLoss
from .feature_transfer import AttentionTransferLoss, FitNetLoss, kd_loss
from .freezing import TeacherNotFrozenError, assert_teacher_frozen, freeze_teacher
from .hybrid_forward import HybridFeatures, HybridForward
from .input_transform import InputConvention, TeacherInputTransform
from .mobilenet_v1 import MobileNetV1
from .paths import PathPlan, hybrid_path_name, make_path_plan
from .splitters import split_backbone, split_sequential
from .stage_alignment import (StageMismatchError, align_stages, aligned_stage_groups,
                              merge_stages)
from .stage_cutting import cut_into_stages
from .stage_usage import used_state_keys
from .stages import (StagedBackbone, StageSpec, SubmoduleChain, check_stage_contract,
                     feature_map)
from .teacher_fingerprint import teacher_fingerprint
from .teacher_guard import TeacherGuard, TeacherSource
from .transfer_backbone import TransferBackbone, TransferSettings
from .transfer_modes import (TransferMode, YamlOption, register_transfer_mode, transfer_mode,
                             transfer_mode_names)
from .transfer_step import StepResult, TransferStep

__all__ = [
    "ActivationBoundaryLoss", "align_stages", "aligned_stage_groups",
    "allow_framework_checkpoints", "assert_teacher_frozen", "AttentionTransferLoss",
    "BALANCE_MODES", "BalancedLoss", "ChannelWiseDivergenceLoss", "check_stage_contract",
    "CheckpointFileError", "CheckpointMismatchError", "CheckpointNotFoundError", "cut_into_stages",
    "export_student_state_dict", "FactorTransferLoss", "feature_map", "FeatureAdapter",
    "FitNetLoss", "freeze_teacher",
    "HybridFeatures", "HybridForward", "hybrid_path_name", "HybridKTError", "HybridTrainingError", "InputConvention",
    "kd_loss", "load_teacher_weights", "LossBalancer", "make_path_plan",
    "merge_stages", "MobileNetV1", "NonFiniteLossError", "PathPlan", "read_checkpoint",
    "read_checkpoint_file", "replace_atomically", "save_atomically", "split_backbone",
    "split_sequential", "StagedBackbone", "StageMismatchError", "StageSpec", "StepResult",
    "SubmoduleChain", "teacher_fingerprint", "TeacherCheckpointError", "TeacherGuard",
    "TeacherInputTransform", "TeacherMismatchError", "TeacherNotFrozenError", "TeacherSource",
    "TransferBackbone", "TransferMode", "TransferSettings", "TransferStep",
    "register_transfer_mode", "transfer_mode", "transfer_mode_names", "YamlOption",
    "UnsupportedBackboneError", "UntrustedCheckpointError", "used_state_keys",
    "write_text_atomically",
]
