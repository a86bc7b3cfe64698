"""The RetinaNet CityPersons config above on the synthetic CityPersons, at CPU scale."""
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L

from .retinanet_R_50_FPN_1x_hybrid_citypersons import (dataloader, lr_multiplier, model,
                                                       optimizer, train)

# A small random teacher (smoke runs: a random ResNet-50 in eval mode blows its activations
# up through 16 residual blocks); give a trained teacher's weights for transfer.
model.backbone.bottom_up.teacher.arch = "resnet18"
model.backbone.bottom_up.teacher.allow_random_init = True
# From scratch (no ImageNet download): the student's FrozenBN becomes BN, all stages train.
_student = model.backbone.bottom_up.student  # underscore: not a config key
_student.stem.norm = _student.stages.norm = "BN"
_student.freeze_at = 0
dataloader.train.dataset.names = "citypersons_synthetic_train"
dataloader.test.dataset.names = "citypersons_synthetic_val"
dataloader.evaluator.dataset_name = "citypersons_synthetic_val"
dataloader.train.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=(256,), max_size=512, sample_style="choice"),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=256,
                                                               max_size=512)]
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = dataloader.test.num_workers = 0
train.device = "cpu"
train.init_checkpoint = ""
train.max_iter = 600
train.eval_period = 0
train.checkpointer.period = 100000
lr_multiplier.scheduler.milestones = [450, 550]
lr_multiplier.scheduler.num_updates = train.max_iter
lr_multiplier.warmup_length = 50 / train.max_iter
