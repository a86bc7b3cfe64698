# CityPersons (Zhang et al., CVPR 2017) for mmdet detectors, from the files as distributed:
# data_root/annotations/anno_{train,val}.mat and the Cityscapes images under
# data_root/leftImg8bit/{train,val}/<city>/. Full resolution, as the paper trains (Table 4).
# A dataset base as mmdet's own _base_/datasets/*.py: compose it with a model, a schedule and
# mmdet's default_runtime; the detector's heads need num_classes=1 (one class, person).
custom_imports = dict(imports=['hybridkt_ext.for_mmdet'], allow_failed_imports=False)

dataset_type = 'CityPersonsDataset'
data_root = 'data/citypersons/'
image_scale = (2048, 1024)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/anno_train.mat', filter_cfg=dict(filter_empty_gt=True),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/anno_val.mat', test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CityPersonsMetric', data_root=data_root,
                     ann_file='annotations/anno_val.mat')
test_evaluator = val_evaluator

# 2975 training images (about 2400 with a pedestrian), batch 2 x 8 GPUs: 6k iterations is
# 40 epochs, the schedule of the CityPersons baselines.
