"""The evaluator of a test dataset, chosen by its metadata's ``evaluator_type``.

detectron2's ``tools/train_net.py`` decides by ``MetadataCatalog.get(name).evaluator_type``, the
type its builtin datasets (COCO, LVIS, Cityscapes, ADE20K, VOC, ...) carry; this is the same
choice, evaluator by evaluator and folder by folder, plus ``"citypersons"``, the type of the
CityPersons datasets registered here (``citypersons.py``, ``synthetic_dense_targets.py``), which
get the benchmark's MR^-2 ``CityPersonsEvaluator``. A model-zoo config converted to hybrid
forward is therefore evaluated as the plain config is.
"""
from __future__ import annotations

from typing import Callable

from detectron2.data import MetadataCatalog
from detectron2.evaluation import (CityscapesInstanceEvaluator, CityscapesSemSegEvaluator,
                                   COCOEvaluator, COCOPanopticEvaluator, DatasetEvaluator,
                                   DatasetEvaluators, LVISEvaluator, PascalVOCDetectionEvaluator,
                                   SemSegEvaluator)

from ..core import HybridKTError
from .citypersons_evaluation import CityPersonsEvaluator

CITYPERSONS = "citypersons"

# (dataset name, output folder) -> evaluator. detectron2's train_net gives no output folder to
# the Cityscapes and VOC evaluators (they write nothing there); neither does this.
Builder = Callable[[str, str], DatasetEvaluator]
EVALUATOR_BUILDERS: dict[str, tuple[Builder, ...]] = {
    "sem_seg": (lambda name, out: SemSegEvaluator(name, distributed=True, output_dir=out),),
    "coco": (lambda name, out: COCOEvaluator(name, output_dir=out),),
    # Semantic, instance and panoptic results, in train_net's order.
    "coco_panoptic_seg": (
        lambda name, out: SemSegEvaluator(name, distributed=True, output_dir=out),
        lambda name, out: COCOEvaluator(name, output_dir=out),
        lambda name, out: COCOPanopticEvaluator(name, out),
    ),
    "cityscapes_instance": (lambda name, out: CityscapesInstanceEvaluator(name),),
    "cityscapes_sem_seg": (lambda name, out: CityscapesSemSegEvaluator(name),),
    "pascal_voc": (lambda name, out: PascalVOCDetectionEvaluator(name),),
    "lvis": (lambda name, out: LVISEvaluator(name, output_dir=out),),
    CITYPERSONS: (lambda name, out: CityPersonsEvaluator(name, output_dir=out),),
}


class UnknownEvaluatorTypeError(HybridKTError, ValueError):
    """A test dataset's ``evaluator_type`` names no evaluator this trainer can build."""


def build_dataset_evaluator(dataset_name: str, output_folder: str) -> DatasetEvaluator:
    """The evaluator(s) of ``dataset_name``, as detectron2's train_net builds them.

    Args:
        dataset_name: a dataset registered in MetadataCatalog (``DATASETS.TEST``).
        output_folder: where the evaluators that write files put them.

    Returns:
        One evaluator, or ``DatasetEvaluators`` of several (``coco_panoptic_seg``).

    Raises:
        UnknownEvaluatorTypeError: the dataset's metadata has no ``evaluator_type``, or one
            not in ``EVALUATOR_BUILDERS``. Not ``NotImplementedError``, detectron2's type:
            ``DefaultTrainer.test`` would catch that and skip the evaluation with a warning
            that names neither the dataset's type nor the fix.
    """
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type")
    builders = EVALUATOR_BUILDERS.get(evaluator_type)
    if builders is None:
        has = ("has no evaluator_type" if evaluator_type is None
               else f"has evaluator_type {evaluator_type!r}")
        raise UnknownEvaluatorTypeError(
            f"dataset {dataset_name!r} {has} in its MetadataCatalog metadata, which names no "
            f"evaluator: set MetadataCatalog.get({dataset_name!r}).evaluator_type to one of "
            f"{sorted(EVALUATOR_BUILDERS)}, or override build_evaluator in a subclass of "
            "HybridKTTrainer to build yours.")
    evaluators = [build(dataset_name, output_folder) for build in builders]
    return evaluators[0] if len(evaluators) == 1 else DatasetEvaluators(evaluators)
