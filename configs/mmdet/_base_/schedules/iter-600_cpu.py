# The synthetic configs' schedule, the detectron2 synthetic configs' own: 600 iterations of
# batch 2, lr 0.02 (x0.1 at 450) after 50 warm-up iterations; CPU minutes.
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
train_cfg = dict(type='IterBasedTrainLoop', max_iters=600, val_interval=600)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=600, milestones=[450], gamma=0.1),
]
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))
