"""tools/train_cls.py end to end on a sliver of digits: teacher, students, table, plot."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO  # noqa: E402


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / "train_cls.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=600)


def test_demo_trains_teacher_and_students_and_prints_the_table(tmp_path):
    out = run("--demo", "--epochs", "1", "--train-limit", "128", "--student",
              "mobilenet_v1_0.25", "--modes", "none,hybrid,fixed", "--fixed-alpha", "0.5",
              "--work-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "teacher resnet18: test accuracy" in out.stdout
    table = [line for line in out.stdout.splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in table[1:]] == ["none", "hybrid", "fixed0.5"]
    assert (tmp_path / "alpha_and_path_losses.png").stat().st_size > 0
    assert (tmp_path / "student_hybrid.csv").read_text().splitlines()[0].count("hkt_alpha") == 1
    # A second run, the demo included, leaves the first one's files as they were unless asked.
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for again in (["--demo"], ["--train-teacher"]):
        done = run(*again, "--epochs", "1", "--train-limit", "64", "--work-dir", str(tmp_path))
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1].startswith(
            f"train_cls: FileExistsError: {tmp_path} holds the outputs of a previous run "
            "(teacher_resnet18.pth, teacher_resnet18.csv")
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    done = run("--demo", "--overwrite", "--epochs", "1", "--train-limit", "64", "--modes",
               "none", "--work-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "student_none.pth").read_bytes() != before["student_none.pth"]


@pytest.mark.parametrize("args, message", [
    (["--modes", "hybrid"], "--teacher-checkpoint"),
    (["--modes", "hybird"], "hybird"),
    (["--epochs", "0"], "argument --epochs: must be an integer >= 1, got 0"),
    (["--epochs", "-1"], "argument --epochs: must be an integer >= 1, got -1"),
    (["--image-size", "0"], "argument --image-size: must be an integer >= 1, got 0"),
    (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got 0"),
    (["--lr", "-0.1"], "argument --lr: must be a finite number > 0, got -0.1"),
    (["--lr", "nan"], "argument --lr: must be a finite number > 0, got nan"),
    (["--train-limit", "0"], "argument --train-limit: must be an integer >= 1, got 0"),
    (["--demo", "--teacher-checkpoint", "t.pth"], "--teacher-checkpoint would be ignored"),
    (["--train-teacher", "--teacher-checkpoint", "t.pth"], "would be ignored"),
    (["--demo", "--train-teacher"], "give one of them"),
    (["--demo", "--modes", "none,none"], "--modes names ['none'] more than once"),
    (["--demo", "--modes", "none,hybrid", "--fixed-alpha", "0.5"],
     "--fixed-alpha applies to mode fixed only"),
    (["--demo", "--modes", "none,kd", "--switch-points", "2"],
     "--switch-points applies to mode hybrid / fixed only"),
    (["--demo", "--data-root", "x", "--train-limit", "10"], "digits only"),
])
def test_cli_rejects_bad_arguments(args, message):
    out = run(*args)
    assert out.returncode == 2 and message in out.stderr


def test_fewer_images_than_one_batch_stop_before_training(tmp_path):
    out = run("--modes", "none", "--train-limit", "10", "--work-dir", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "train_cls: ValueError: the training set has 10 images, fewer than one batch "
        "(--batch-size 64): no step would train. Lower --batch-size or raise --train-limit.")
    assert not list(tmp_path.iterdir())


def test_a_work_dir_that_is_a_file_stops_before_training(tmp_path):
    (tmp_path / "file").write_text("mine")
    out = run("--modes", "none", "--work-dir", str(tmp_path / "file"))
    assert out.returncode == 1 and "is a file, not a folder" in out.stderr
    assert (tmp_path / "file").read_text() == "mine"


def test_missing_teacher_checkpoint_fails_before_training(tmp_path):
    out = run("--modes", "hybrid", "--teacher-checkpoint", str(tmp_path / "nope.pth"),
              "--epochs", "1", "--train-limit", "64", "--work-dir", str(tmp_path))
    assert out.returncode != 0 and "nope.pth" in out.stderr


def test_an_imagenet_checkpoint_lends_its_trunk_and_a_broken_one_fails_first(tmp_path):
    import torch
    import torchvision

    # An ImageNet ResNet-18: its 1000-class classifier does not fit the 10 digit classes.
    torch.manual_seed(0)
    weights = torchvision.models.resnet18().state_dict()
    torch.save(weights, tmp_path / "imagenet_r18.pth")
    args = ["--modes", "none,hybrid", "--teacher-checkpoint", str(tmp_path / "imagenet_r18.pth"),
            "--student", "mobilenet_v1_0.25", "--epochs", "1", "--train-limit", "64",
            "--work-dir", str(tmp_path / "ok")]
    out = run(*args)
    assert out.returncode == 0, out.stderr[-2000:]
    # KD needs the teacher's logits: the classifier must fit, and the run stops before training.
    kd = run(*[a if a != "none,hybrid" else "none,kd" for a in args[:-1]], str(tmp_path / "kd"))
    assert kd.returncode == 1 and "fc.weight: checkpoint (1000, 512) vs module (10, 512)" in \
        kd.stderr and "Traceback" not in kd.stderr
    assert not list((tmp_path / "kd").glob("student_*"))  # not even the 'none' student
    del weights["layer3.0.conv1.weight"]  # a stage weight missing: refused for every mode
    torch.save(weights, tmp_path / "imagenet_r18.pth")
    broken = run(*args[:-1], str(tmp_path / "broken"))
    assert broken.returncode == 1 and "layer3.0.conv1.weight" in broken.stderr
    assert not list((tmp_path / "broken").glob("student_*"))


def _image_folder(root, classes=("cat", "dog"), per_class: int = 2):
    """A tiny ImageFolder (8x8 PNGs) with train/ and val/."""
    from PIL import Image

    for split in ("train", "val"):
        for label in classes:
            (root / split / label).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / split / label / f"{i}.png")
    return root


def _tree(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_an_image_folder_of_one_class_is_refused_before_training(tmp_path):
    data = _image_folder(tmp_path / "data", classes=("cat",))
    out = run("--modes", "none", "--data-root", str(data), "--image-size", "8",
              "--batch-size", "1", "--epochs", "1", "--work-dir", str(tmp_path / "work"))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"train_cls: ValueError: {data / 'train'} has 1 class folder (cat); classification "
        "needs at least two, one folder of images per class in both train/ and val/."]
    assert not list((tmp_path / "work").iterdir())


@pytest.mark.parametrize("split, damage", [("val", "truncated"), ("val", "not an image"),
                                           ("train", "truncated")])
def test_a_corrupt_image_is_named_before_training(tmp_path, split, damage):
    data = _image_folder(tmp_path / "data")
    bad = data / split / "dog" / "1.png"
    # A download cut short after the header, or a text file under an image name.
    bad.write_bytes(bad.read_bytes()[:60] if damage == "truncated" else b"not an image")
    before = _tree(data)
    out = run("--modes", "none", "--data-root", str(data), "--image-size", "8",
              "--batch-size", "1", "--epochs", "1", "--work-dir", str(tmp_path / "work"))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith(f"train_cls: ValueError: {bad} is not a readable image (")
    assert lines[0].endswith("replace or remove it (every image under train/ and val/ is "
                             "checked before training).")
    assert not list((tmp_path / "work").iterdir())  # no epoch was trained
    assert _tree(data) == before


def test_outputs_onto_the_teacher_or_into_the_images_are_refused(tmp_path):
    teacher = tmp_path / "teacher.pth"
    teacher.write_bytes(b"the teacher's weights")
    work = tmp_path / "work"
    work.mkdir()
    os.link(teacher, work / "student_none.pth")  # the 'none' student would be written onto it
    out = run("--modes", "none,hybrid", "--teacher-checkpoint", str(teacher), "--overwrite",
              "--work-dir", str(work))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"train_cls: OutputIsInputError: {work / 'student_none.pth'} is {teacher} (the same "
        "file under another name: a hard link), which train_cls reads or writes; write each "
        "output to a path of its own (it would be lost, --overwrite or not)."]
    assert teacher.read_bytes() == b"the teacher's weights"
    data = _image_folder(tmp_path / "data")
    before = _tree(data)
    out = run("--modes", "none", "--data-root", str(data), "--work-dir", str(data / "val"))
    assert out.returncode == 1
    assert out.stderr.strip().startswith(
        f"train_cls: OutputIsInputError: {data / 'val' / 'student_none.pth'} is inside "
        f"{data / 'val'}, a folder train_cls reads files from")
    assert _tree(data) == before
