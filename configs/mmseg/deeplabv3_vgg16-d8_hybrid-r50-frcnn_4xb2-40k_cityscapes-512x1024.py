# Task gap (the paper's "CS det" teacher): the VGG16 DeepLab student taught by the ResNet-50
# of a detectron2 Faster R-CNN trained on Cityscapes, loaded into a torchvision ResNet-50.
# detectron2 feeds BGR 0-255 images minus its pixel mean (std 1): the teacher's own input.
_base_ = './deeplabv3_vgg16-d8_hybrid-r101-d8_4xb2-40k_cityscapes-512x1024.py'
model = dict(
    backbone=dict(
        teacher=dict(
            _delete_=True, type='torchvision.resnet50',
            checkpoint='checkpoints/faster_rcnn_R_50_FPN_cityscapes.pth',
            prefix='backbone.bottom_up.', remap='detectron2_resnet_to_torchvision',
            input=dict(mean=(103.53, 116.28, 123.675), std=(1.0, 1.0, 1.0),
                       channel_order='BGR')),
        # torchvision ResNet-50 is not dilated: /4 /8 /16 /32; adapters interpolate to /8.
        stage_groups=dict(student=[[0, 1, 2], [3], [4]], teacher=[[0], [1, 2], [3]])))
