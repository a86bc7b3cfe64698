# The paper's segmentation student: DeepLab with a VGG16 backbone (output stride 8), taught
# by a DeepLab ResNet-101 D8 teacher trained on GTA5. VGG16 has 5 stages (/1 /2 /4 /8 /8),
# the teacher 4 (/4 /8 /8 /8): `stage_groups` pairs them into 3 switchable stages so both
# heads' inputs (conv4, conv5) end a stage. Schedule as in the paper: lr 1e-3, poly decay.
_base_ = './deeplabv3_r18-d8_hybrid-r101-d8_4xb2-40k_cityscapes-512x1024.py'
model = dict(
    backbone=dict(
        student=dict(
            _delete_=True, type='VGG16', output_stride=8, out_indices=(3, 4),
            # torchvision's ImageNet VGG16 (features.* keys match); a user-provided file.
            init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vgg16-397923af.pth')),
        stage_groups=dict(student=[[0, 1, 2], [3], [4]], teacher=[[0], [1, 2], [3]])),
    decode_head=dict(in_channels=512, in_index=1, channels=256),
    auxiliary_head=dict(in_channels=512, in_index=0, channels=128))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
