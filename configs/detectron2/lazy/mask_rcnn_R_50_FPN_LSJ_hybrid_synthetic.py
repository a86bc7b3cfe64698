"""The LSJ CityPersons config above on the synthetic CityPersons, at CPU scale: 256-pixel LSJ
crops, batch 2, no AMP, a small random teacher unless trained weights are given."""
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L

from .mask_rcnn_R_50_FPN_100ep_LSJ_hybrid_citypersons import (dataloader, lr_multiplier, model,
                                                               optimizer, train)

# A small random teacher (smoke runs: a random ResNet-50 in eval mode blows its activations
# up through 16 residual blocks); give a trained teacher's weights for transfer.
model.backbone.bottom_up.teacher.arch = "resnet18"
model.backbone.bottom_up.teacher.allow_random_init = True
dataloader.train.dataset.names = "citypersons_synthetic_train"
dataloader.test.dataset.names = "citypersons_synthetic_val"
dataloader.evaluator.dataset_name = "citypersons_synthetic_val"
image_size = 256
dataloader.train.mapper.augmentations = [
    L(T.ResizeScale)(min_scale=0.5, max_scale=1.5, target_height=image_size,
                     target_width=image_size),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size)),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=256,
                                                               max_size=512)]
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = dataloader.test.num_workers = 0
train.amp.enabled = False
train.ddp.fp16_compression = False
train.device = "cpu"
train.init_checkpoint = ""
train.max_iter = 600
train.eval_period = 0
train.checkpointer.period = 100000
lr_multiplier.scheduler.milestones = [450, 550]
lr_multiplier.scheduler.num_updates = train.max_iter
lr_multiplier.warmup_length = 50 / train.max_iter
optimizer.lr = 0.02
