"""Framework-neutral core (torch + torchvision only)."""
from .adapters import FeatureAdapter
from .balance import BALANCE_MODES, BalancedLoss, LossBalancer, NonFiniteLossError
from .checkpoint import (CheckpointFileError, TeacherCheckpointError, load_checkpoint_file,
                         load_teacher_weights, read_checkpoint)
from .export import export_student_state_dict, save_atomically
from .feature_transfer import AttentionTransferLoss, FitNetLoss, kd_loss
from .freezing import TeacherNotFrozenError, assert_teacher_frozen, freeze_teacher
from .hybrid_forward import HybridFeatures, HybridForward
from .input_transform import InputConvention, TeacherInputTransform
from .mobilenet_v1 import MobileNetV1
from .paths import PathPlan, make_path_plan
from .splitters import split_backbone, split_sequential
from .stage_alignment import (StageMismatchError, align_stages, aligned_stage_groups,
                              merge_stages)
from .stages import StagedBackbone, StageSpec, SubmoduleChain, check_stage_contract

__all__ = [
    "AttentionTransferLoss", "BALANCE_MODES", "BalancedLoss", "CheckpointFileError",
    "FeatureAdapter", "FitNetLoss",
    "HybridFeatures", "HybridForward", "InputConvention", "LossBalancer", "MobileNetV1",
    "NonFiniteLossError", "PathPlan", "StageMismatchError", "StageSpec", "StagedBackbone", "SubmoduleChain",
    "TeacherCheckpointError", "TeacherInputTransform", "TeacherNotFrozenError", "align_stages",
    "aligned_stage_groups",
    "assert_teacher_frozen", "check_stage_contract", "export_student_state_dict",
    "freeze_teacher", "kd_loss", "load_checkpoint_file", "load_teacher_weights", "make_path_plan", "merge_stages",
    "read_checkpoint", "save_atomically", "split_backbone", "split_sequential",
]
