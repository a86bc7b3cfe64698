"""Plain-PyTorch classification: the paper's model-gap setting (ImageNet; digits built in).

Needs only torch and torchvision (scikit-learn for the built-in digits data).
"""
from .digits import load_digits_splits
from .models import ARCHITECTURES, build_classifier, classifier_head, staged_classifier
from .trainer import TrainConfig, evaluate, fit, save_classifier
from .transfer_classifier import MODES, TransferClassifier

__all__ = ["ARCHITECTURES", "MODES", "TrainConfig", "TransferClassifier", "build_classifier",
           "classifier_head", "evaluate", "fit", "load_digits_splits", "save_classifier",
           "staged_classifier"]
