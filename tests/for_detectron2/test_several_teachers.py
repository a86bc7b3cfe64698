"""Several teachers on the detectron2 side: ``MODEL.HYBRIDKT.TEACHERS`` (YAML) and
``hybrid_bottom_up(teacher=[...])`` (LazyConfig) train through the real trainer with one alpha
per teacher in the logs; a one-element list is the one-teacher run; the teachers are one
fingerprinted set for --resume; the exported student holds no teacher; mistakes are refused
before anything is built."""
import json

import pytest
import torch

from tests.for_detectron2.d2_helpers import CONFIGS, TINY, load_cfg, train_net_module
from detectron2.config import LazyConfig, instantiate  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402
from detectron2.utils.env import seed_all_rng  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

from hybridkt_ext.core import StageMismatchError, TeacherMismatchError  # noqa: E402
from hybridkt_ext.core import teacher_fingerprint  # noqa: E402
from hybridkt_ext.for_detectron2 import HybridKTTrainer, install_transfer_step  # noqa: E402
from hybridkt_ext.for_detectron2.export import (plain_student_config,  # noqa: E402
                                                student_state_dict)
from hybridkt_ext.for_detectron2.hooks import find_teacher  # noqa: E402

MULTI = CONFIGS / "hybridkt-mobilenetv1-fpn-multi-teacher-synthetic.yaml"
SINGLE = CONFIGS / "hybridkt-mobilenetv1-fpn-synthetic.yaml"
NAMES = ("tv_r18", "d2_r18")  # the shipped config's teachers, in order
# Base-synthetic.yaml's one-teacher keys back to their defaults, for a TEACHERS list on top.
NO_SINGLE = ["MODEL.HYBRIDKT.TEACHER.ARCH", "resnet50",
             "MODEL.HYBRIDKT.TEACHER.ALLOW_RANDOM_INIT", "False"]


@pytest.fixture(autouse=True)
def synthetic_data(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HYBRIDKT_DATA", str(tmp_path_factory.getbasetemp() / "hkt_data"))


def _teachers(*entries):
    return ["MODEL.HYBRIDKT.TEACHERS", repr(list(entries))]


def _rows(output_dir):
    rows = [json.loads(line) for line in (output_dir / "metrics.json").read_text().splitlines()]
    return [r for r in rows if "total_loss" in r]


def _history(trainer, key):
    return {it: value for value, it in trainer.storage.history(key).values()}


def test_the_shipped_config_trains_with_one_alpha_per_teacher(tmp_path):
    cfg = load_cfg(MULTI, TINY + ["SOLVER.MAX_ITER", "2", "OUTPUT_DIR", str(tmp_path)])
    trainer = train_net_module().Trainer(cfg)
    engine = trainer.model.backbone.bottom_up.engine
    assert engine.num_teachers == 2 and engine.teacher_names == NAMES
    teacher = find_teacher(trainer.model)
    before = teacher_fingerprint(teacher)
    trainer.train()
    assert teacher_fingerprint(teacher) == before  # both stayed frozen
    for it in (0, 1):  # every step, through the EventStorage ...
        l3 = _history(trainer, "hkt_L3")[it]
        for name in NAMES:
            l1, l2 = (_history(trainer, f"{key}/{name}")[it] for key in ("hkt_L1", "hkt_L2"))
            assert _history(trainer, f"hkt_alpha/{name}")[it] == pytest.approx(
                2 * l3 / (l1 + l2), rel=1e-4)
    (row,) = _rows(tmp_path)  # ... to metrics.json
    assert {f"hkt_alpha/{n}" for n in NAMES} <= set(row) and "hkt_alpha" not in row
    hook = next(h for h in trainer._hooks if type(h).__name__ == "HybridKTHook")
    assert all(f"hkt_alpha/{n}" in r for r in hook.rows for n in NAMES) and len(hook.rows) == 2
    assert (tmp_path / "alpha_and_path_losses.png").exists()


def test_sampling_runs_one_teacher_per_step_in_turn(tmp_path):
    cfg = load_cfg(MULTI, TINY + ["SOLVER.MAX_ITER", "2", "OUTPUT_DIR", str(tmp_path),
                                  "MODEL.HYBRIDKT.TEACHER_SAMPLING", "sample", "TEST.EVAL_PERIOD",
                                  "0"])
    trainer = train_net_module().Trainer(cfg)
    trainer.train()
    assert _history(trainer, "hkt_teacher") == {0: 0.0, 1: 1.0}
    assert sorted(_history(trainer, f"hkt_alpha/{NAMES[0]}")) == [0]
    assert sorted(_history(trainer, f"hkt_alpha/{NAMES[1]}")) == [1]


def _first_step(cfg, output_dir):
    cfg.defrost()
    cfg.OUTPUT_DIR = str(output_dir)
    seed_all_rng(0)  # the random-init teacher, the student and the data order
    trainer = train_net_module().Trainer(cfg)
    trainer.train()
    return trainer, {k: _history(trainer, k)[0] for k in
                     ("hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3", "total_loss")}


def test_a_one_teacher_list_is_the_one_teacher_run(tmp_path):
    opts = TINY + ["SOLVER.MAX_ITER", "1"]
    single, expected = _first_step(load_cfg(SINGLE, opts), tmp_path / "single")
    listed, got = _first_step(
        load_cfg(SINGLE, opts + NO_SINGLE + _teachers(
            {"ARCH": "resnet18", "ALLOW_RANDOM_INIT": True, "NAME": "only"})), tmp_path / "list")
    assert got == expected  # same engine, same keys, same numbers
    assert listed.model.state_dict().keys() == single.model.state_dict().keys()
    row = _rows(tmp_path / "list")[0]
    assert "hkt_alpha" in row and not any(k.startswith(("hkt_alpha/", "hkt_L1/", "hkt_L2/"))
                                          for k in row)  # no per-teacher keys


@pytest.fixture(scope="module")
def teacher_files(tmp_path_factory):
    import torchvision

    folder = tmp_path_factory.mktemp("teachers")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(folder / f"resnet18_{seed}.pth")
        torch.save(torchvision.models.resnet18().state_dict(), paths[-1])
    return paths


def _two_teacher_cfg(output_dir, files):
    entries = [{"NAME": f"t{k}", "ARCH": "resnet18", "WEIGHTS": str(f),
                "WEIGHTS_STRICT": False} for k, f in enumerate(files)]
    return load_cfg(SINGLE, TINY + NO_SINGLE + _teachers(*entries) + [
        "SOLVER.MAX_ITER", "4", "OUTPUT_DIR", str(output_dir)])


def test_resuming_with_the_teachers_reordered_is_refused(tmp_path, teacher_files):
    trainer_cls = train_net_module().Trainer
    first = trainer_cls(_two_teacher_cfg(tmp_path / "run", teacher_files))
    first.checkpointer.save("model_0000002", iteration=2)
    again = trainer_cls(_two_teacher_cfg(tmp_path / "run", teacher_files))
    again.resume_or_load(resume=True)  # the same teachers in the same order: resumes
    assert again.start_iter == first.iter + 1
    swapped = trainer_cls(_two_teacher_cfg(tmp_path / "run", teacher_files[::-1]))
    built = teacher_fingerprint(find_teacher(swapped.model))
    with pytest.raises(TeacherMismatchError, match=r"TEACHERS\[\*\]\.WEIGHTS"):
        swapped.resume_or_load(resume=True)
    assert teacher_fingerprint(find_teacher(swapped.model)) == built  # left as built


def test_the_exported_student_holds_no_teacher():
    cfg = load_cfg(MULTI, TINY)
    model = HybridKTTrainer.build_model(cfg)
    assert any(".teacher.1." in k for k in model.state_dict())  # the second teacher is there
    exported = student_state_dict(model)
    assert not [k for k in exported if "teacher" in k or ".engine." in k or "to_student" in k]
    plain = plain_student_config(cfg)
    assert "HYBRIDKT" not in plain.MODEL
    from detectron2.modeling import build_model

    build_model(plain).load_state_dict(exported, strict=True)  # exactly the plain student


def test_the_lazyconfig_list_form_builds_and_runs_a_step():
    cfg = LazyConfig.load(str(CONFIGS / "lazy" / "retinanet_R_50_FPN_hybrid_synthetic.py"))
    cfg.model.backbone.bottom_up.teacher = [
        dict(arch="resnet18", allow_random_init=True, name="tv"),
        dict(framework="detectron2", arch="resnet18", allow_random_init=True, name="d2",
             pixel_mean=[103.53, 116.28, 123.675], pixel_std=[1.0, 1.0, 1.0],
             input_format="BGR")]
    cfg.model.backbone.bottom_up.balance = dict(teachers="sample")
    model = instantiate(cfg.model)
    assert install_transfer_step(model)
    engine = model.backbone.bottom_up.engine
    assert engine.teacher_names == ("tv", "d2")
    assert engine.teacher_input[1].swap is False and engine.teacher_input[0].swap is True
    instances = Instances((96, 128))
    instances.gt_boxes = Boxes(torch.tensor([[10.0, 10.0, 40.0, 90.0]]))
    instances.gt_classes = torch.tensor([0])
    model.train()
    with EventStorage(0) as storage:
        losses = model([{"image": torch.rand(3, 96, 128) * 255, "instances": instances}])
        losses["loss_hkt"].backward()
        logged = storage.latest()
    assert "hkt_alpha/tv" in logged and "hkt_alpha/d2" not in logged  # step 0: teacher 0
    assert logged["hkt_teacher"][0] == 0.0


def test_a_lazy_list_with_an_unknown_teacher_key_is_refused():
    cfg = LazyConfig.load(str(CONFIGS / "lazy" / "retinanet_R_50_FPN_hybrid_synthetic.py"))
    cfg.model.backbone.bottom_up.teacher = [dict(arch="resnet18", allow_random_init=True),
                                            dict(arch="resnet18", wieghts="x.pth")]
    with pytest.raises(ValueError, match=r"teacher\[1\].*'wieghts'.*weights"):
        instantiate(cfg.model)


def test_both_forms_at_once_are_refused():
    cfg = load_cfg(SINGLE, _teachers({"ARCH": "resnet18", "ALLOW_RANDOM_INIT": True}))
    with pytest.raises(ValueError, match="TEACHER sets ALLOW_RANDOM_INIT, ARCH too: give the teachers in one place"):
        HybridKTTrainer.build_model(cfg)


@pytest.mark.parametrize("opts, error, match", [
    (["MODEL.HYBRIDKT.TEACHER_SAMPLING", "random"], ValueError,
     r"TEACHER_SAMPLING is 'random'; use one of \('all', 'sample'\)"),
    (["MODEL.HYBRIDKT.TRANSFER", "fitnet"], ValueError,
     "'fitnet' takes one teacher, and the config lists 2"),
    (NO_SINGLE + _teachers({"ARCH": "resnet18", "ALLOW_RANDOM_INIT": True, "NAME": "a"},
                           {"ARCH": "resnet18", "ALLOW_RANDOM_INIT": True, "NAME": "a"}),
     ValueError, r"names \['a'\] more than once"),
    (NO_SINGLE + _teachers({"ARCH": "resnet18", "ALLOW_RANDOM_INT": True}), ValueError,
     r"TEACHERS\[0\]: 'ALLOW_RANDOM_INT' is not a teacher key.*'ALLOW_RANDOM_INIT'"),
    (NO_SINGLE + _teachers({"ARCH": "resnet18", "WEIGHTS_STRICT": "no"}), ValueError,
     r"TEACHERS\[0\]\.WEIGHTS_STRICT is 'no'"),
    (NO_SINGLE + _teachers({"ARCH": "resnet18", "ALLOW_RANDOM_INIT": True, "NAME": "a"},
                           {"ARCH": "vgg11", "ALLOW_RANDOM_INIT": True, "NAME": "v"}),
     StageMismatchError, r"TEACHERS\[1\] \('v'\).*reduction 16.*TEACHERS\[0\] \('a'\)"),
], ids=["sampling", "fitnet", "names", "key", "type", "stages"])
def test_mistakes_are_refused_naming_the_key(opts, error, match):
    base = SINGLE if opts[0] != "MODEL.HYBRIDKT.TEACHER_SAMPLING" and opts[0] != \
        "MODEL.HYBRIDKT.TRANSFER" else MULTI
    cfg = load_cfg(base, TINY + opts)
    with pytest.raises(error, match=match):
        HybridKTTrainer.build_model(cfg)
