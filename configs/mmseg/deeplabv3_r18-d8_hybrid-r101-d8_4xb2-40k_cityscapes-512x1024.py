# DeepLabV3 ResNetV1c-18 D8 student on Cityscapes with a frozen DeepLabV3 ResNetV1c-101 D8
# teacher (e.g. trained on GTA5: model + domain gap), trained with hybrid forward.
# Against mmseg's deeplabv3_r18-d8 config only four things change: custom_imports, the
# backbone (the original dict moves under `student`, its ImageNet init with it), custom_hooks
# (HybridKTHook wires the stock EncoderDecoder's loss to the transfer step), and the dataset
# type (CheckedCityscapesDataset: the same data, but a missing folder or label fails at once).
_base_ = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py'
custom_imports = dict(imports=['hybridkt_ext.for_mmseg'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
# Path to the user's teacher checkpoint (an mmseg DeepLabV3 R101-D8 checkpoint here).
teacher_checkpoint = 'checkpoints/deeplabv3_r101-d8_gta5-512x1024.pth'
model = dict(
    # EncoderDecoder would hand `pretrained` to HybridBackbone; the student carries its init.
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='HybridBackbone',
        transfer='hybrid',  # 'none' | 'fitnet' | 'at' for the baselines
        student=dict(
            type='ResNetV1c', depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), norm_cfg=norm_cfg,
            norm_eval=False, style='pytorch', contract_dilation=True,
            # the student's ImageNet init, as mmseg's `pretrained='open-mmlab://resnet18_v1c'`
            init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet18_v1c')),
        teacher=dict(
            type='ResNetV1c', depth=101, num_stages=4, out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), norm_cfg=norm_cfg,
            style='pytorch', contract_dilation=True,
            checkpoint=teacher_checkpoint, prefix='backbone.',
            # mmseg teachers share the student's normalisation (RGB, ImageNet mean/std).
            input=dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
                       channel_order='RGB')),
        balance=dict(mode='dynamic')),  # or dict(mode='fixed', fixed_alpha=0.5)
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64))
custom_hooks = [dict(type='HybridKTHook')]
train_dataloader = dict(dataset=dict(type='CheckedCityscapesDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCityscapesDataset'))
test_dataloader = val_dataloader
