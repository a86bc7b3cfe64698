# Small CPU-friendly setting shared by every *synthetic* config: 64x128 generated street scenes
# (hybridkt_ext.datasets.synthetic_segmentation), tiny DeepLabV3 widths, a 400-iteration
# schedule. The data is generated on first use into data/ (git-ignored).
_base_ = [
    'mmseg::_base_/models/deeplabv3_r50-d8.py', 'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_40k.py'
]
custom_imports = dict(imports=['hybridkt_ext.for_mmseg'], allow_failed_imports=False)
crop_size = (64, 128)
norm_cfg = dict(type='BN', requires_grad=True)  # single process on CPU: plain BN
# Student: ResNetV1c-18 at 1/8 width (channels 8, 16, 32, 64), output stride 8.
student_backbone = dict(
    type='ResNetV1c', depth=18, stem_channels=16, base_channels=8, num_stages=4,
    out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), norm_cfg=norm_cfg,
    norm_eval=False, style='pytorch', contract_dilation=True, init_cfg=None)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,  # no download: synthetic runs start from scratch
    backbone=student_backbone,
    decode_head=dict(in_channels=64, channels=16, dilations=(1, 2, 4, 6), norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=32, channels=8, norm_cfg=norm_cfg))
dataset_type = 'SyntheticCityscapesDataset'
data_root = 'data/synthetic_cityscapes'
synthetic = dict(style='cityscapes', num_train=64, num_val=16, size=crop_size, seed=0)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(type=dataset_type, data_root=data_root, synthetic=synthetic,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(type=dataset_type, data_root=data_root, synthetic=synthetic,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.05, weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=400, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=400, val_interval=400)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=4, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=400))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
# TensorBoard beside mmengine's scalars.json: alpha, L1..L3 and the student's head losses.
visualizer = dict(type='SegLocalVisualizer', name='visualizer',
                  vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
randomness = dict(seed=0)
