"""The benchmark modes measure what they say: none has its configuration undone behind its back."""

from __future__ import annotations

import warnings

import torch

from hybridkt_ext.benchmark.naive_paths import naive_teacher, native_stage_sizes
from hybridkt_ext.benchmark.training_cost import (MODES, THREE_PATH_MODES, compare_hybrid_losses,
                                                  configure, make_mode)
from tests.toy_models import head_loss, make_engine


def bench_of(engine, head):
    engine.train()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2, 3, 16, 16, generator=g), torch.randint(0, 3, (2,), generator=g)
    teacher = naive_teacher(engine)
    sizes = native_stage_sizes(engine, x)
    modes = {m: make_mode(m, engine, lambda f: head_loss(head, f, y), None, x, sizes, None,
                          teacher) for m in MODES}
    return {"engine": engine, "x": x, "modes": modes}, teacher


def test_naive_step_trains_its_own_teacher_copy_and_leaves_the_engine_frozen():
    engine, head = make_engine()
    bench, teacher = bench_of(engine, head)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the engine's "teacher was unfrozen" warning fails it
        configure(engine, "naive")
        bench["modes"]["naive"].step()
    stage_params = [p for i in range(teacher.num_stages) for p in teacher.stage(i).parameters()]
    assert stage_params and all(p.requires_grad for p in stage_params)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in stage_params)
    assert all(not p.requires_grad and p.grad is None for p in engine.teacher.parameters())
    assert not engine.teacher.training and not teacher.training


def test_every_mode_keeps_its_configuration_and_the_engine_teacher_frozen():
    engine, head = make_engine()
    bench, _ = bench_of(engine, head)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mode in MODES:
            configure(engine, mode)
            bench["modes"][mode].step()
            assert engine.fuse_stages == (mode != "hybrid_unfused"), mode
            assert engine.recompute_teacher == (mode == "hybrid+ckpt"), mode
    assert all(p.grad is None for p in engine.teacher.parameters())


def test_three_path_modes_give_the_engine_losses_and_alternate_follows_the_step():
    engine, head = make_engine()
    bench, _ = bench_of(engine, head)
    diffs = compare_hybrid_losses(bench)
    assert sorted(diffs) == sorted(THREE_PATH_MODES[1:])
    assert max(diffs.values()) < 1e-5
    ran = []
    original = engine.forward_hybrid
    engine.forward_hybrid = lambda x, paths: ran.append(paths[1]) or original(x, paths=paths)
    for _ in range(3):
        bench["modes"]["hybrid_alternate"].step()
    assert ran == ["student_first", "teacher_first", "student_first"]


def test_each_mimicking_mode_adds_its_registry_loss_to_the_student_loss():
    from hybridkt_ext.benchmark.training_cost import MIMICKING_MODES

    engine, head = make_engine()
    bench, _ = bench_of(engine, head)
    student = bench["modes"]["student"].forward()[0].item()
    for mode in MIMICKING_MODES:
        configure(engine, mode)
        total = bench["modes"][mode].forward()[0].item()
        assert total > student, mode  # every mimicking loss is positive on random features


def test_the_frozen_bn_resnet_keeps_no_batch_statistics_and_calibrated_activations():
    import torchvision
    from torchvision.ops.misc import FrozenBatchNorm2d

    from hybridkt_ext.benchmark.settings import frozen_bn_resnet
    from hybridkt_ext.core.norm_stats import uses_batch_statistics

    def trunk_output(model):
        with torch.no_grad():
            return torch.nn.Sequential(*list(model.children())[:-2])(torch.randn(2, 3, 64, 64))

    torch.manual_seed(0)
    model = frozen_bn_resnet("resnet101").train()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not uses_batch_statistics(model)
    calibrated = trunk_output(model).abs().max()
    # FrozenBN with its initial statistics normalises nothing: the random R-101's activations
    # grow block by block (the det_r101_r50-frozenbn step's teacher-first loss was ~1e4).
    torch.manual_seed(0)
    raw = trunk_output(torchvision.models.resnet101(weights=None, norm_layer=FrozenBatchNorm2d))
    assert calibrated < 100 < raw.abs().max()
