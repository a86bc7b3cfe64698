# The synthetic hybrid config made reproducible across process counts and across resume:
# same model, data, schedule and sampler (InfiniteSampler, shuffled with the run's seed), with
# the three things removed that make a training step depend on how the batch is split over
# processes or on random draws after start-up. tests/reliability trains it as 2 processes x
# batch 1 and 1 process x batch 2 and expects the same losses, and interrupts/resumes it and
# expects the same loss and alpha sequence.
#   2 processes: torchrun --nproc_per_node 2 tools/train_seg.py <this> --launcher pytorch
#   1 process:   python tools/train_seg.py <this> --cfg-options train_dataloader.batch_size=2
_base_ = './_base_/synthetic_hybrid_64x128.py'
# 1. BatchNorm in training mode normalises with the statistics of each process's own batch,
#    so batch 2 and 2 x batch 1 normalise differently, and SyncBN (which would fix that) runs
#    on GPUs only. The student's BN is frozen instead (detectron2's default): eval mode, so
#    it uses its running statistics, and its affine parameters are not trained.
frozen_bn = dict(type='BN', requires_grad=False)
# mmseg heads have no norm_eval switch: GroupNorm normalises every sample on its own and is
# still trained, so the heads' norm parameters take part in the gradient averaging.
head_norm = dict(type='GN', num_groups=4, requires_grad=True)
model = dict(
    backbone=dict(student=dict(norm_cfg=frozen_bn, norm_eval=True)),
    # 2. Dropout draws its masks from torch's global generator: a different stream per process
    #    count, and mmengine re-seeds rather than restores it when resuming.
    decode_head=dict(norm_cfg=head_norm, dropout_ratio=0.0),
    auxiliary_head=dict(norm_cfg=head_norm, dropout_ratio=0.0))
# 3. RandomFlip draws from numpy's generator per process: with 2 processes, sample k is
#    flipped by rank (k mod 2)'s stream instead of the single process's k-th draw.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=1, dataset=dict(pipeline=train_pipeline))
