"""Mixed precision and non-finite losses in the core balancer, through the hybrid engine.

Policy under test (LossBalancer docstring): alpha and the total are float32 whatever the
path losses' dtype; a NaN/inf path loss raises NonFiniteLossError naming the path and the
step before a loss is returned, so backward and optimizer.step never run for that step and
the weights and optimiser state stay those of the last good step.

fp16 adds a gradient scaler, and the two split the work: gradients that overflow fp16 (the
loss was finite) are the scaler's, which skips that step and lowers its scale; a loss that
is itself non-finite is ours, raised before the scaler or backward ever see it. Tested here
on CPU with torch's own fp16 autocast and GradScaler("cpu"); mmengine's AmpOptimWrapper and
detectron2's AMPTrainer assert CUDA, so their fp16 runs are in test_amp_gpu.py.
"""
from __future__ import annotations

import copy
import math
import multiprocessing
import socket

import pytest
import torch
import torch.nn.functional as F

from hybridkt_ext.core import LossBalancer, NonFiniteLossError
from tests.toy_models import make_engine

BF16 = torch.bfloat16
FP16 = torch.float16


def _batch(seed: int = 0, size: tuple[int, int] = (16, 16)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, *size, generator=g), torch.randint(0, 3, (4,), generator=g)


def _half_precision_loss(head, feats, y, gain: float = 1.0) -> torch.Tensor:
    # Squared error on logits: under CPU autocast the linear layer gives bf16/fp16 and
    # pow/mean stay in it (cross_entropy would be autocast to float32), so the losses really
    # are half precision. ``gain`` scales the logits (fp16 overflows past 65504).
    logits = head(feats[-1].mean((2, 3))) * gain
    return (logits - F.one_hot(y, logits.shape[1]).to(logits.dtype)).pow(2).mean()


def _path_losses(engine, head, x, y, loss_fn):
    feats = engine.forward_hybrid(x)
    return [loss_fn(head, f, y) for f in (feats.student_first, feats.teacher_first,
                                          feats.student)]


def _ce(head, feats, y):
    return F.cross_entropy(head(feats[-1].mean((2, 3))), y)


@pytest.mark.parametrize("loss_fn, loss_dtype", [(_ce, torch.float32),
                                                  (_half_precision_loss, BF16)])
def test_bf16_autocast_gives_finite_losses_and_a_float32_alpha(loss_fn, loss_dtype):
    engine, head = make_engine(teacher_padding=0)  # sizes differ: adapters interpolate in bf16
    engine.train()
    x, y = _batch(size=(17, 23))  # odd sizes too
    with torch.autocast("cpu", dtype=BF16):
        losses = _path_losses(engine, head, x, y, loss_fn)
        balanced = LossBalancer("dynamic")(*losses)
    assert [loss.dtype for loss in losses] == [loss_dtype] * 3
    assert all(math.isfinite(loss.item()) for loss in losses)
    assert balanced.alpha.dtype == torch.float32 and balanced.total.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in balanced.log_values().values())
    l1, l2, l3 = (loss.float().item() for loss in losses)
    assert balanced.alpha.item() == pytest.approx(2 * l3 / (l1 + l2), rel=1e-6)
    balanced.total.backward()
    grads = [p.grad for p in engine.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None for p in engine.teacher.parameters())


def test_fp16_losses_whose_sum_overflows_fp16_still_give_a_finite_alpha():
    # 40000 + 40000 is inf in fp16 (max 65504): alpha and the total must be formed in float32.
    l1 = torch.tensor(40000.0, dtype=torch.float16, requires_grad=True)
    l2 = torch.tensor(40000.0, dtype=torch.float16, requires_grad=True)
    l3 = torch.tensor(1000.0, dtype=torch.float16, requires_grad=True)
    balanced = LossBalancer("dynamic")(l1, l2, l3)
    assert balanced.alpha.dtype == torch.float32
    assert balanced.alpha.item() == pytest.approx(2 * 1000.0 / 80000.0)
    assert balanced.total.dtype == torch.float32
    assert balanced.total.item() == pytest.approx(2 * 1000.0 / 80000.0 * 80000.0 + 1000.0)
    balanced.total.backward()
    assert l1.grad.item() == pytest.approx(0.025, rel=1e-3)


def test_fixed_and_student_only_alpha_are_float32_even_with_float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        bf = [torch.tensor(v, dtype=BF16) for v in (1.0, 2.0, 3.0)]
        assert LossBalancer("fixed", fixed_alpha=0.5)(*bf).alpha.dtype == torch.float32
        only = LossBalancer("student_only")(None, None, bf[2])
        assert only.alpha.dtype == torch.float32 and only.total.dtype == torch.float32
    finally:
        torch.set_default_dtype(previous)


class _Trainer:
    """The order every framework uses: losses -> balancer -> zero_grad, backward, step."""

    def __init__(self, seed: int = 0) -> None:
        self.engine, self.head = make_engine(seed=seed)
        self.engine.train()
        self.balancer = LossBalancer("dynamic")
        params = [p for p in self.engine.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
        self.step = 0

    def train_step(self, x, y, poison: tuple[int, float] | None = None):
        with torch.autocast("cpu", dtype=BF16):
            losses = _path_losses(self.engine, self.head, x, y, _half_precision_loss)
            if poison is not None:
                index, value = poison
                losses[index] = losses[index] * value
            balanced = self.balancer(*losses, step=self.step)
        self.optimizer.zero_grad(set_to_none=True)
        balanced.total.backward()
        self.optimizer.step()
        self.step += 1
        return balanced

    def snapshot(self):
        return (copy.deepcopy(self.engine.state_dict()),
                copy.deepcopy(self.optimizer.state_dict()))


def _assert_same(before, after, engine):
    (state_a, opt_a), (state_b, opt_b) = before, after
    # Parameters (student, adapters, teacher) and the teacher's buffers. The student's BN
    # running statistics did see the failed batch: its forward ran before the loss existed,
    # as in any framework (documented in LossBalancer).
    keys = [f"{n}" for n, _ in engine.named_parameters()]
    keys += [f"teacher.{n}" for n, _ in engine.teacher.named_buffers()]
    for key in keys:
        assert torch.equal(state_a[key], state_b[key]), key
    for pid, buffers in opt_a["state"].items():
        assert torch.equal(buffers["momentum_buffer"], opt_b["state"][pid]["momentum_buffer"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("index, path", [(0, "L1 (student-first path)"),
                                         (1, "L2 (teacher-first path)"),
                                         (2, "L3 (student path)")])
def test_non_finite_path_loss_stops_the_step_and_leaves_weights_unchanged(index, path, bad):
    trainer = _Trainer()
    x, y = _batch()
    trainer.train_step(x, y)  # one good step: momentum buffers exist and are non-zero
    before = trainer.snapshot()
    with pytest.raises(NonFiniteLossError) as info:
        trainer.train_step(x, y, poison=(index, bad))
    message = str(info.value)
    assert path in message and "at step 1" in message and "was not applied" in message
    _assert_same(before, trainer.snapshot(), trainer.engine)
    # alpha is not poisoned: the next good step balances its own finite losses only.
    x2, y2 = _batch(seed=1)
    balanced = trainer.train_step(x2, y2)
    l1, l2, l3 = (balanced.l1.item(), balanced.l2.item(), balanced.l3.item())
    assert math.isfinite(balanced.alpha.item())
    assert balanced.alpha.item() == pytest.approx(2 * l3 / (l1 + l2), rel=1e-6)


def test_without_a_step_the_error_counts_balancer_calls():
    balancer = LossBalancer()
    ok = [torch.tensor(1.0)] * 3
    balancer(*ok)
    with pytest.raises(NonFiniteLossError, match=r"call 2 of this LossBalancer"):
        balancer(ok[0], torch.tensor(float("nan")), ok[2])


def test_classification_fit_names_epoch_and_step_and_keeps_the_last_good_weights():
    from hybridkt_ext.for_classification.trainer import TrainConfig, fit
    from hybridkt_ext.for_classification.transfer_classifier import TransferClassifier
    from tests.toy_models import ToyNet, staged

    torch.manual_seed(0)
    student, teacher = ToyNet(), ToyNet((6, 12, 24))
    model = TransferClassifier(staged(student), lambda f: student.fc(f.mean((2, 3))),
                               "hybrid", staged(teacher))
    real_balancer, seen = model.step.balancer, {}

    def balancer_with_a_nan_at_step_2(l1, l2, l3, step=None):
        if real_balancer.num_calls == 2:  # the third step: poison the teacher-first path
            seen["weights"] = copy.deepcopy(model.state_dict())
            l2 = l2 * float("nan")
        return real_balancer(l1, l2, l3, step=step)

    model.step.balancer = balancer_with_a_nan_at_step_2
    data = torch.utils.data.TensorDataset(torch.randn(16, 3, 8, 8), torch.randint(0, 3, (16,)))
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, step 2: .*L2 \(teacher-first"):
        fit(model, model.training_step, data, TrainConfig(epochs=1, batch_size=4))
    after = model.state_dict()
    assert all(torch.equal(seen["weights"][k], after[k]) for k, _ in model.named_parameters())


# ----------------------------------------------------------------------------- fp16 + scaler
# The losses here are fp16 themselves, so the gradient entering each is scale * its weight:
# the default 2**16 already overflows fp16 (max 65504) and its first step is always skipped.
# (mmseg's cross-entropy runs in float32 under autocast, where 2**16 is fine.)
SCALE = 2.0 ** 12


def _fp16_parts(init_scale: float = SCALE):
    engine, head = make_engine()
    engine.train()
    params = [p for p in engine.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    # What mmengine's AmpOptimWrapper(loss_scale=dict(init_scale=...)) builds, on the CPU.
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    assert scaler.is_enabled(), "this torch build has no CPU GradScaler"
    return engine, head, optimizer, scaler, LossBalancer("dynamic")


def _fp16_step(engine, head, optimizer, scaler, balancer, x, y, gains=(1.0, 1.0, 1.0)):
    """One AmpOptimWrapper-style step: fp16 forward, balance, scaled backward, scaler step."""
    with torch.autocast("cpu", dtype=FP16):
        feats = engine.forward_hybrid(x)
        losses = [_half_precision_loss(head, f, y, g) for f, g in zip(
            (feats.student_first, feats.teacher_first, feats.student), gains)]
        balanced = balancer(*losses)  # raises here on a non-finite loss: nothing below runs
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(balanced.total).backward()
    scaler.step(optimizer)
    scaler.update()
    return losses, balanced


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _teacher_state(engine) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in engine.teacher.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fp16_autocast_and_grad_scaler_update_the_student_and_not_the_teacher():
    engine, head, optimizer, scaler, balancer = _fp16_parts()
    student, teacher = _params(engine.student), _teacher_state(engine)
    x, y = _batch(size=(17, 23))
    losses, balanced = _fp16_step(engine, head, optimizer, scaler, balancer, x, y)
    assert [loss.dtype for loss in losses] == [FP16] * 3
    assert all(math.isfinite(loss.item()) for loss in losses)
    assert balanced.alpha.dtype == torch.float32 and balanced.total.dtype == torch.float32
    l1, l2, l3 = (loss.float().item() for loss in losses)
    assert balanced.alpha.item() == pytest.approx(2 * l3 / (l1 + l2), rel=1e-6)
    # The step was applied: the scale did not back off, and every student weight moved.
    assert scaler.get_scale() == SCALE
    after = _params(engine.student)
    assert all(not torch.equal(student[k], after[k]) for k in student)
    assert all(torch.isfinite(v).all() for v in after.values())
    assert _same(teacher, _teacher_state(engine)), "the frozen teacher changed"
    assert all(p.grad is None for p in engine.teacher.parameters())


def test_overflowing_fp16_gradients_are_the_scalers_it_skips_the_step_and_backs_off():
    # A finite loss scaled by 2**40 overflows the fp16 gradients in backward: the scaler's
    # case (skip, halve the scale), not ours, so no NonFiniteLossError.
    engine, head, optimizer, scaler, balancer = _fp16_parts(init_scale=2.0 ** 40)
    weights, teacher = _params(engine), _teacher_state(engine)
    x, y = _batch()
    losses, balanced = _fp16_step(engine, head, optimizer, scaler, balancer, x, y)
    assert all(math.isfinite(v.item()) for v in (*losses, balanced.total, balanced.alpha))
    grads = [p.grad for p in engine.parameters() if p.grad is not None]
    assert grads and not all(torch.isfinite(g).all() for g in grads)  # it did overflow
    assert scaler.get_scale() == 2.0 ** 39
    assert _same(weights, _params(engine)), "a step with inf gradients was applied"
    assert optimizer.state_dict()["state"] == {}  # no momentum from the skipped step
    # The scaler recovers by itself: halving until the gradients fit, then it steps.
    for _ in range(40):
        _fp16_step(engine, head, optimizer, scaler, balancer, x, y)
        if not _same(weights, _params(engine)):
            break
    else:
        pytest.fail("the scaler never found a scale at which the step applies")
    assert scaler.get_scale() < 2.0 ** 39 and balancer.num_calls > 2
    assert _same(teacher, _teacher_state(engine))


def test_fp16_loss_overflowing_to_inf_raises_before_the_scaler_and_backward():
    engine, head, optimizer, scaler, balancer = _fp16_parts()
    x, y = _batch()
    _fp16_step(engine, head, optimizer, scaler, balancer, x, y)  # one good step first
    weights, teacher = _params(engine), _teacher_state(engine)
    momentum = copy.deepcopy(optimizer.state_dict()["state"])
    optimizer.zero_grad(set_to_none=True)
    # Teacher-first logits 1e4 times too large (e.g. a teacher fed unnormalised input): the
    # squared error exceeds fp16's 65504 and the fp16 loss is inf (finite in float32).
    gains = (1.0, 1e4, 1.0)
    with pytest.raises(NonFiniteLossError) as info:
        _fp16_step(engine, head, optimizer, scaler, balancer, x, y, gains=gains)
    message = str(info.value)
    assert "L2 (teacher-first path)" in message and "L2=inf" in message
    assert "at call 2" in message and "was not applied" in message
    # Neither scaler.scale/backward nor step ran: no gradients, same weights, scale, momentum.
    assert all(p.grad is None for p in engine.parameters())
    assert _same(weights, _params(engine)) and _same(teacher, _teacher_state(engine))
    assert scaler.get_scale() == SCALE
    after = optimizer.state_dict()["state"]
    assert all(torch.equal(momentum[i]["momentum_buffer"], after[i]["momentum_buffer"])
               for i in momentum)
    feats = engine.forward_hybrid(x)
    assert math.isfinite(_half_precision_loss(head, feats.teacher_first, y, 1e4).item())


# ----------------------------------------------------------------------------- two ranks
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(target) -> list[tuple]:
    """Runs ``target(rank, port, results)`` on two gloo ranks; what they put in ``results``."""
    # fork: the children need no re-import of torch (spawn would add seconds per rank).
    ctx = multiprocessing.get_context("fork")
    results, port = ctx.Queue(), _free_port()
    procs = [ctx.Process(target=target, args=(r, port, results)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, "a rank hung in a collective"
    assert [p.exitcode for p in procs] == [0, 0]
    return [results.get(timeout=10) for _ in procs]


def _rank_main(rank: int, port: int, results) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    try:
        balancer = LossBalancer("dynamic")
        ok = balancer(*(torch.tensor(v) for v in (1.0, 3.0, 2.0 + 2 * rank)))
        l2 = torch.tensor(float("nan") if rank == 1 else 3.0)
        try:
            balancer(torch.tensor(1.0), l2, torch.tensor(2.0), step=7)
            results.put((rank, ok.alpha.item(), "no error"))
        except NonFiniteLossError as err:
            results.put((rank, ok.alpha.item(), str(err)))
        dist.barrier()  # both ranks got here: nobody is left waiting in a collective
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available()
                    or not torch.distributed.is_gloo_available()
                    or "fork" not in multiprocessing.get_all_start_methods(),
                    reason="needs torch.distributed with gloo, and fork")
def test_a_nan_on_one_rank_stops_every_rank_and_alpha_uses_the_rank_mean():
    by_rank = {rank: (alpha, message) for rank, alpha, message in _two_ranks(_rank_main)}
    # mean L = [1, 3, 3]: alpha = 2*3/4 on both ranks, whatever each rank's own L3
    assert by_rank[0][0] == pytest.approx(1.5) and by_rank[1][0] == pytest.approx(1.5)
    assert "another rank" in by_rank[0][1] and "L2 (teacher-first path)" in by_rank[0][1]
    assert "L2=nan" in by_rank[1][1] and "at step 7" in by_rank[1][1]


def _several_teachers_rank_main(rank: int, port: int, results) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    try:
        # Rank r's losses: teacher a (1, 3 + 2r), teacher b (2 + r, 2), L3 = 2 + 2r.
        pairs = [(torch.tensor(1.0), torch.tensor(3.0 + 2 * rank)),
                 (torch.tensor(2.0 + rank), torch.tensor(2.0))]
        _, balanced = LossBalancer("dynamic").teachers(pairs, torch.tensor(2.0 + 2 * rank),
                                                       ("a", "b"))
        results.put((rank, [b.alpha.item() for b in balanced]))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available()
                    or not torch.distributed.is_gloo_available()
                    or "fork" not in multiprocessing.get_all_start_methods(),
                    reason="needs torch.distributed with gloo, and fork")
def test_each_teachers_alpha_uses_the_rank_mean_of_its_own_losses():
    by_rank = dict(_two_ranks(_several_teachers_rank_main))
    # Rank means: L3 = 3; teacher a L1 + L2 = 1 + 4 = 5, teacher b 2.5 + 2 = 4.5.
    assert by_rank[0] == by_rank[1] == pytest.approx([2 * 3 / 5, 2 * 3 / 4.5])
