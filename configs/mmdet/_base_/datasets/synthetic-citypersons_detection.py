# Synthetic CityPersons for mmdet detectors: the project's seeded generator writes the official
# layout (annotations/anno_{train,val}.mat, leftImg8bit/) into data_root on first use; the
# images are read at 1/4 of Cityscapes' 2048x1024, as the detectron2 synthetic configs do.
# A dataset base as mmdet's own _base_/datasets/*.py: compose it with a model, a schedule and
# mmdet's default_runtime; the detector's heads need num_classes=1 (one class, person).
custom_imports = dict(imports=['hybridkt_ext.for_mmdet'], allow_failed_imports=False)

dataset_type = 'SyntheticCityPersonsDataset'
data_root = 'data/synthetic_citypersons_mmdet/'
synthetic = dict(num_train=64, num_val=32, seed=0, statistics='learnable')
image_scale = (512, 256)

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
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type=dataset_type, data_root=data_root, synthetic=synthetic,
                 ann_file='annotations/anno_train.mat', filter_cfg=dict(filter_empty_gt=True),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, synthetic=synthetic,
                 ann_file='annotations/anno_val.mat', test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CityPersonsMetric', data_root=data_root,
                     ann_file='annotations/anno_val.mat')
test_evaluator = val_evaluator
