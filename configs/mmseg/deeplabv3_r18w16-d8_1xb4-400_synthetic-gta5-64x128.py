# The synthetic teacher: a plain DeepLabV3 ResNetV1c-18 at 1/4 width trained on GTA5-style
# synthetic data (GTA5 layout: images/ + labels/ with Cityscapes label ids). Its checkpoint
# is the teacher of the *synthetic-cityscapes* hybrid configs (domain gap + model gap).
_base_ = './_base_/synthetic_64x128.py'
model = dict(
    backbone=dict(stem_channels=32, base_channels=16),
    decode_head=dict(in_channels=128, channels=32),
    auxiliary_head=dict(in_channels=64, channels=16))
dataset_type = 'SyntheticGTA5Dataset'
data_root = 'data/synthetic_gta5'
synthetic = dict(style='gta5', num_train=64, num_val=16, size=(64, 128), seed=1)
data_prefix = dict(img_path='images', seg_map_path='labels')  # GTA5's own layout
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, synthetic=synthetic,
                                     data_prefix=data_prefix, ann_file='train.txt'))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, synthetic=synthetic,
                                   data_prefix=data_prefix, ann_file='val.txt'))
test_dataloader = val_dataloader
