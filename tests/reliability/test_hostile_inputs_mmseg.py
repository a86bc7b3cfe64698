"""Hostile inputs through the real mmseg config, model build, datasets, Runner and export tool.

Each must fail with one clear error naming the field or file and the fix, before any
training step, and leave no checkpoint or export behind. Cases already covered in
tests/for_mmseg/test_hybrid_backbone.py (missing teacher file, shape mismatches, a prefix
matching nothing, unknown transfer) are not repeated.
"""
from __future__ import annotations

import copy
import importlib.util
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmseg.models", reason="MMSegmentation is not installed")

from hybridkt_ext.for_openmmlab import install_transfer_step  # noqa: E402
from hybridkt_ext.core import TeacherCheckpointError  # noqa: E402
from hybridkt_ext.datasets.synthetic_segmentation import (  # noqa: E402
    generate_synthetic_segmentation)
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmseg.registry import DATASETS, MODELS  # noqa: E402
from tests.conftest import png_bytes  # noqa: E402
from tests.for_mmseg.conftest import (  # noqa: E402
    HYBRID_CONFIG, REPO, run_config,
)

warnings.filterwarnings("ignore", message="the teacher keeps its random")
HYBRID_CFG = Config.fromfile(str(HYBRID_CONFIG))  # parsed once: each parse costs ~2 s
TEACHER_SPEC = HYBRID_CFG.model.backbone.teacher
PIPELINE = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"),
            dict(type="PackSegInputs")]
CITYSCAPES_PREFIX = dict(img_path="leftImg8bit/train", seg_map_path="gtFine/train")


def build_model(**options):
    """The hybrid synthetic config's model with ``options`` merged, built as the Runner does
    and its loss wired as HybridKTHook wires it before the run."""
    cfg = copy.deepcopy(HYBRID_CFG)
    cfg.merge_from_dict(options)
    model = MODELS.build(cfg.model)
    assert install_transfer_step(model)
    return model


def run_hybrid(work_dir: Path, data_root: Path, extra: dict | None = None,
               train: bool = True) -> None:
    """The real Runner on the hybrid synthetic config, 2 iterations, a checkpoint after each."""
    run_config(HYBRID_CFG, work_dir, data_root, iters=2, train=train,
               extra={"default_hooks.checkpoint.interval": 1, **(extra or {})})


def teacher_file(path: Path, **options) -> dict:
    return {"model.backbone.teacher.checkpoint": str(path),
            "model.backbone.teacher.allow_random_init": False, **options}


@pytest.fixture(scope="module")
def good_teacher_checkpoint(tmp_path_factory) -> Path:
    """An mmseg-style checkpoint of the config's teacher backbone (keys under 'backbone.')."""
    spec = {k: v for k, v in TEACHER_SPEC.items()
            if k not in ("checkpoint", "allow_random_init", "prefix")}
    teacher = MODELS.build(spec)
    path = tmp_path_factory.mktemp("teacher") / "iter_400.pth"
    torch.save({"meta": {"iter": 400}, "state_dict": {f"backbone.{k}": v for k, v in
                                                      teacher.state_dict().items()}}, path)
    return path


# ----------------------------------------------------------------------------- teacher files
@pytest.mark.parametrize("name, kind, fragment", [
    ("teacher.pth", "empty", "empty (0 bytes)"),
    ("teacher.pth", "truncated", "truncated"),
    ("teacher.pth", "text", "not a checkpoint at all"),
    ("teacher.png", "png", "not a checkpoint at all"),
])
def test_broken_teacher_file_fails_the_model_build(tmp_path, good_teacher_checkpoint, name,
                                                   kind, fragment):
    path = tmp_path / name
    if kind == "truncated":
        data = good_teacher_checkpoint.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes({"empty": b"", "text": b"teacher: resnet18\n",
                          "png": png_bytes()}[kind])
    with pytest.raises(TeacherCheckpointError) as info:
        build_model(**teacher_file(path))
    message = str(info.value)
    assert str(path) in message and fragment in message


def test_wrong_prefix_lists_the_prefixes_present(tmp_path, good_teacher_checkpoint):
    state = torch.load(good_teacher_checkpoint)["state_dict"]
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    with pytest.raises(TeacherCheckpointError) as info:
        build_model(**teacher_file(path))
    message = str(info.value)
    assert "no checkpoint key starts with prefix 'backbone.'" in message
    assert "'module.backbone.'" in message and "Pass one of them as `prefix`" in message


def test_broken_teacher_file_stops_the_runner_before_training(tmp_path):
    empty = tmp_path / "teacher.pth"
    empty.write_bytes(b"")
    with pytest.raises(TeacherCheckpointError, match="empty"):
        run_hybrid(tmp_path / "work", tmp_path / "data", extra=teacher_file(empty),
                   train=False)
    assert not list((tmp_path / "work").rglob("*.pth"))
    assert not (tmp_path / "data").exists()  # failed before any data was even prepared


# ----------------------------------------------------------------------------- config fields
@pytest.mark.parametrize("options, error, fragments", [
    ({"model.backbone.teacher.type": "ResNetV1x"}, ValueError,
     ["teacher.type='ResNetV1x'", "Did you mean", "'ResNetV1c'"]),
    ({"model.backbone.teacher": dict(type="torchvision.resnt18", allow_random_init=True)},
     ValueError, ["teacher.type='torchvision.resnt18'", "'torchvision.resnet18'"]),
    ({"model.backbone.teacher.chekpoint": "teacher.pth"}, ValueError,
     ["'chekpoint'", "Did you mean teacher.checkpoint?"]),
    ({"model.backbone.teacher.allow_random_init": "False"}, ValueError,
     ["teacher.allow_random_init must be True or False"]),
    ({"model.backbone.teacher.input": dict(mean=(0, 0), std=(1, 1, 1))}, ValueError,
     ["teacher.input", "mean needs 3 numbers"]),
    ({"model.backbone.student.type": "ResNetV1"}, ValueError,
     ["student.type='ResNetV1'", "Did you mean"]),
    ({"model.backbone.switch_points": [4]}, ValueError,
     ["switch_points [4] has [4] outside 1..3"]),
    ({"model.backbone.switch_points": [0]}, ValueError, ["switch_points [0] has [0] outside"]),
    ({"model.backbone.switch_points": [1.5]}, ValueError,
     ["switch_points [1.5] holds [1.5], which are not integer stage indices"]),
    ({"model.backbone.balance.mode": "dynamc"}, ValueError, ["balance.mode='dynamc'"]),
    ({"model.backbone.balance": dict(mode="fixed", fixed_alpha=-0.5)}, ValueError,
     ["fixed_alpha must be finite and >= 0, got -0.5"]),
    ({"model.backbone.balance": dict(mode="fixed", fixed_alpha=float("nan"))}, ValueError,
     ["fixed_alpha must be finite and >= 0, got nan"]),
    ({"model.backbone.balance": dict(mode="fixed", fixed_alpha=float("inf"))}, ValueError,
     ["fixed_alpha must be finite and >= 0, got inf"]),
    ({"model.backbone.balance": dict(mode="fixed", fixed_alpha="0.5")}, ValueError,
     ["fixed_alpha must be a number >= 0, got '0.5'"]),
    ({"model.backbone.balance": dict(mode="dynamic", fixed_alpha=0.5)}, ValueError,
     ["balance.fixed_alpha=0.5 would be ignored by mode='dynamic'"]),
    ({"model.backbone.swtich_points": [1]}, ValueError,
     ["HybridBackbone: unknown key 'swtich_points'. Did you mean 'switch_points'?"]),
    ({"model.backbone.student_input": dict(mena=(0, 0, 0))}, ValueError,
     ["HybridBackbone.student_input: unknown key 'mena'. Did you mean 'mean'?"]),
    ({"model.backbone.transfer": "fitnet", "model.backbone.fitnet": dict(wieght=2.0)},
     ValueError, ["fitnet: unknown key 'wieght'. Did you mean 'weight'?"]),
    ({"model.backbone.transfer": "at", "model.backbone.at": dict(bta=1.0)}, ValueError,
     ["at: unknown key 'bta'. Did you mean 'beta'?"]),
], ids=["mmseg-type-typo", "torchvision-typo", "load-key-typo", "quoted-flag", "bad-input",
        "student-type-typo", "switch-too-high", "switch-zero", "switch-float", "mode-typo",
        "alpha-negative", "alpha-nan", "alpha-inf", "alpha-string", "alpha-ignored",
        "backbone-key-typo", "student-input-typo", "fitnet-key-typo", "at-key-typo"])
def test_bad_config_fields_fail_the_model_build_naming_the_field(options, error, fragments):
    with pytest.raises(error) as info:
        build_model(**options)
    for fragment in fragments:
        assert fragment in str(info.value)


# ----------------------------------------------------------------------------- image sizes
def _samples(n: int, size: tuple[int, int]):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    samples = []
    for _ in range(n):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, *size)))
        s.set_metainfo(dict(img_shape=size, pad_shape=size, ori_shape=size))
        samples.append(s)
    return samples


@pytest.mark.parametrize("teacher_options", [
    {}, {"model.backbone.teacher.dilations": (1, 1, 1, 1),
         "model.backbone.teacher.strides": (1, 2, 2, 2)}], ids=["same-stride", "stride-32"])
def test_images_not_divisible_by_the_total_stride_train_through_the_real_model(
        teacher_options):
    # Decision: odd sizes work (adapters resize to the receiving network's own size). The
    # config's data_preprocessor pads to 64x128; loss() is called with unpadded inputs here.
    model = build_model(**teacher_options).train()
    size = (63, 97)
    inputs = torch.randn(2, 3, *size)
    paths = model.backbone.forward_hybrid(inputs)
    shapes = [f.shape for f in paths.student]
    assert [f.shape for f in paths.student_first] == shapes
    assert [f.shape for f in paths.teacher_first] == shapes
    losses = model.loss(inputs, _samples(2, size))
    assert torch.isfinite(losses["loss_hkt"]) and torch.isfinite(losses["hkt_alpha"])
    losses["loss_hkt"].backward()


# ----------------------------------------------------------------------------- datasets
def _build_dataset(cfg: dict):
    init_default_scope("mmseg")
    return DATASETS.build(dict(pipeline=PIPELINE, **cfg))


@pytest.fixture()
def gta5_root(tmp_path) -> Path:
    return generate_synthetic_segmentation(tmp_path / "gta5", "gta5", num_train=2, num_val=1)


@pytest.fixture()
def cityscapes_root(tmp_path) -> Path:
    return generate_synthetic_segmentation(tmp_path / "cs", "cityscapes", num_train=2,
                                           num_val=1)


def test_gta5_empty_or_missing_folders_fail_when_the_dataset_is_built(tmp_path):
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no images ending in '\.png'.*empty"):
        _build_dataset(dict(type="GTA5Dataset", data_root=str(tmp_path / "empty")))
    with pytest.raises(FileNotFoundError, match=r"image folder .*/nowhere/images does not "
                                                r"exist.*<data_root>/images/<name>\.png"):
        _build_dataset(dict(type="GTA5Dataset", data_root=str(tmp_path / "nowhere")))


def test_gta5_missing_split_file_image_or_label_fails_naming_the_files(gta5_root):
    with pytest.raises(FileNotFoundError, match=r"ann_file .*tain\.txt does not exist"):
        _build_dataset(dict(type="GTA5Dataset", data_root=str(gta5_root), ann_file="tain.txt"))
    (gta5_root / "labels" / "train_00001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 2 images have no label file.*"
                                                r"labels/train_00001\.png"):
        _build_dataset(dict(type="GTA5Dataset", data_root=str(gta5_root), ann_file="train.txt"))
    (gta5_root / "images" / "train_00000.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 2 images listed in .*train\.txt do not "
                                                r"exist.*images/train_00000\.png"):
        _build_dataset(dict(type="GTA5Dataset", data_root=str(gta5_root), ann_file="train.txt"))


def test_gta5_label_ids_without_a_train_id_become_ignore(gta5_root):
    import cv2

    label_path = gta5_root / "labels" / "train_00000.png"
    label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    label[0, :4] = (1, 34, 40, 254)  # ego vehicle (no train id), then not label ids at all
    label[1, :2] = (26, 33)  # car -> 13, bicycle -> 18
    cv2.imwrite(str(label_path), label)
    ds = _build_dataset(dict(type="GTA5Dataset", data_root=str(gta5_root),
                             ann_file="train.txt"))
    seg = ds[0]["data_samples"].gt_sem_seg.data[0]
    assert seg[0, :4].tolist() == [255, 255, 255, 255]
    assert seg[1, :2].tolist() == [13, 18]
    assert set(seg.unique().tolist()) <= set(range(19)) | {255}


@pytest.mark.parametrize("dataset_type", ["SyntheticCityscapesDataset",
                                          "CheckedCityscapesDataset"])
def test_cityscapes_train_ids_out_of_range_fail_naming_the_file(cityscapes_root, dataset_type):
    import cv2

    label_path = sorted(cityscapes_root.glob("gtFine/train/*/*_labelTrainIds.png"))[0]
    label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    label[0, :2] = (19, 33)  # e.g. a *_labelIds.png passed as train ids
    cv2.imwrite(str(label_path), label)
    ds = _build_dataset(dict(type=dataset_type, data_root=str(cityscapes_root),
                             data_prefix=CITYSCAPES_PREFIX))
    index = [i for i in range(len(ds))
             if ds.get_data_info(i)["seg_map_path"] == str(label_path)][0]
    with pytest.raises(ValueError) as info:
        ds[index]
    message = str(info.value)
    assert str(label_path) in message and "[19, 33]" in message
    assert "valid: 0..18 and 255" in message and "labelTrainIds" in message


def test_damaged_synthetic_cityscapes_folder_fails_when_built(cityscapes_root):
    labels = sorted(cityscapes_root.glob("gtFine/train/*/*_labelTrainIds.png"))
    labels[0].unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 2 images have no label file"):
        _build_dataset(dict(type="SyntheticCityscapesDataset", data_root=str(cityscapes_root),
                            data_prefix=CITYSCAPES_PREFIX))
    for image in cityscapes_root.glob("leftImg8bit/train/*/*.png"):
        image.unlink()
    with pytest.raises(FileNotFoundError, match=r"no images ending in '_leftImg8bit\.png'.*"
                                                r"delete data_root to regenerate"):
        _build_dataset(dict(type="SyntheticCityscapesDataset", data_root=str(cityscapes_root),
                            data_prefix=CITYSCAPES_PREFIX))


def test_mmseg_cityscapes_dataset_on_an_empty_folder_fails_at_build(tmp_path):
    # mmseg's own class (the real-data configs use CheckedCityscapesDataset instead): no check
    # of ours, and the error names no folder, but it does not train on nothing either.
    (tmp_path / "leftImg8bit" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="need at least one array"):
        _build_dataset(dict(type="CityscapesDataset", data_root=str(tmp_path),
                            data_prefix=CITYSCAPES_PREFIX))


# ----------------------------------------------------------------------------- real Cityscapes
REAL_CITYSCAPES_CONFIGS = sorted((REPO / "configs" / "mmseg").glob("*_cityscapes-512x1024.py"))
OFFICIAL_LAYOUT = ("leftImg8bit/<split>/<city>/<name>_leftImg8bit.png",
                   "gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png")
MAKE_TRAIN_IDS = ("createTrainIdLabelImgs", "tools/dataset_converters/cityscapes.py")


def _checked(root: Path, **kwargs):
    return _build_dataset(dict(type="CheckedCityscapesDataset", data_root=str(root),
                               data_prefix=CITYSCAPES_PREFIX, **kwargs))


def _assert_names_layout_and_fix(message: str) -> None:
    for fragment in OFFICIAL_LAYOUT + MAKE_TRAIN_IDS:
        assert fragment in message, fragment


def test_checked_cityscapes_missing_folders_fail_at_build_naming_them(tmp_path, cityscapes_root):
    with pytest.raises(FileNotFoundError) as info:
        _checked(tmp_path / "nowhere")
    message = str(info.value)
    assert f"image folder {tmp_path / 'nowhere' / 'leftImg8bit' / 'train'} does not exist" \
        in message and f"nor does data_root {tmp_path / 'nowhere'}" in message
    _assert_names_layout_and_fix(message)
    # Images present, label folder absent (train ids never generated, labels elsewhere).
    import shutil

    shutil.rmtree(cityscapes_root / "gtFine")
    with pytest.raises(FileNotFoundError) as info:
        _checked(cityscapes_root)
    message = str(info.value)
    assert f"label folder {cityscapes_root / 'gtFine' / 'train'} does not exist" in message
    _assert_names_layout_and_fix(message)


def test_checked_cityscapes_empty_folder_fails_at_build_naming_it(tmp_path):
    for folder in ("leftImg8bit/train/aachen", "gtFine/train/aachen"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "leftImg8bit" / "train" / "aachen" / "aachen_000000_000019.png").touch()
    with pytest.raises(FileNotFoundError) as info:
        _checked(tmp_path)
    message = str(info.value)
    assert f"no images ending in '_leftImg8bit.png' under {tmp_path / 'leftImg8bit' / 'train'}" \
        in message and "the dataset is empty" in message
    _assert_names_layout_and_fix(message)


def test_checked_cityscapes_image_without_its_train_id_label_fails_naming_both(
        cityscapes_root):
    # As downloaded: *_gtFine_labelIds.png beside the image's missing *_labelTrainIds.png.
    label = sorted(cityscapes_root.glob("gtFine/train/*/*_gtFine_labelTrainIds.png"))[1]
    image = Path(str(label).replace("gtFine", "leftImg8bit", 1).replace(
        "_gtFine_labelTrainIds.png", "_leftImg8bit.png"))
    assert image.exists() and Path(str(label).replace("TrainIds", "Ids")).exists()
    label.unlink()
    with pytest.raises(FileNotFoundError) as info:
        _checked(cityscapes_root)
    message = str(info.value)
    assert "1 of 2 images have no label file" in message
    assert f"{image} (expected {label})" in message
    for fragment in MAKE_TRAIN_IDS:
        assert fragment in message


def test_checked_cityscapes_loads_a_complete_official_layout_through_the_real_configs(
        tmp_path):
    root = generate_synthetic_segmentation(tmp_path / "cityscapes", "cityscapes", num_train=3,
                                           num_val=2)
    loaders = ("train_dataloader", "val_dataloader", "test_dataloader")
    parsed = {p.name: Config.fromfile(str(p)) for p in REAL_CITYSCAPES_CONFIGS}
    assert len(parsed) >= 2
    for name, cfg in parsed.items():
        assert [cfg[k].dataset.type for k in loaders] == ["CheckedCityscapesDataset"] * 3, name
    cfg = parsed["deeplabv3_r18-d8_hybrid-r101-d8_4xb2-40k_cityscapes-512x1024.py"]
    for loader, split, size in zip(loaders, ("train", "val", "val"), (3, 2, 2)):
        # The config's own data_prefix and suffixes, on the generated official layout.
        spec = copy.deepcopy(cfg[loader].dataset)
        spec.update(data_root=str(root))
        ds = _build_dataset({k: v for k, v in spec.items() if k != "pipeline"})
        assert len(ds) == size
        info = ds.get_data_info(0)
        assert f"/leftImg8bit/{split}/" in info["img_path"]
        assert info["seg_map_path"].endswith("_gtFine_labelTrainIds.png")
        seg = ds[0]["data_samples"].gt_sem_seg.data
        assert seg.shape[-2:] == (64, 128)
        assert set(seg.unique().tolist()) <= set(range(19)) | {255}


def _runner_data(root: Path) -> Path:
    return generate_synthetic_segmentation(root, "cityscapes", num_train=8, num_val=4)


def test_runner_with_missing_labels_stops_before_the_first_step(tmp_path):
    root = _runner_data(tmp_path / "data")
    sorted(root.glob("gtFine/train/*/*_labelTrainIds.png"))[-1].unlink()
    with pytest.raises(FileNotFoundError, match="have no label file"):
        run_hybrid(tmp_path / "work", root)
    assert not list((tmp_path / "work").rglob("*.pth"))


def test_runner_with_out_of_range_labels_stops_before_the_first_step(tmp_path):
    import cv2

    root = _runner_data(tmp_path / "data")
    for path in root.glob("gtFine/train/*/*_labelTrainIds.png"):
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        label[0, 0] = 19
        cv2.imwrite(str(path), label)
    with pytest.raises(ValueError, match=r"outside the 19 classes"):
        run_hybrid(tmp_path / "work", root)
    assert not list((tmp_path / "work").rglob("*.pth"))
    logged = [line for p in (tmp_path / "work").rglob("scalars.json")
              for line in p.read_text().splitlines()]
    assert not any("loss" in line for line in logged)  # no step was taken


# ----------------------------------------------------------------------------- export tool
def _export_tool():
    return importlib.import_module("hybridkt_ext.cli.export_seg_student")


def _hybrid_checkpoint(path: Path) -> Path:
    torch.save({"meta": {"iter": 2}, "state_dict": {
        "backbone.engine.student.model.conv1.weight": torch.ones(2, 3, 1, 1),
        "backbone.engine.teacher.model.conv1.weight": torch.zeros(4, 3, 1, 1),
        "backbone.engine.to_student.1.proj.weight": torch.zeros(2, 4, 1, 1),
        "decode_head.conv_seg.weight": torch.ones(19, 2, 1, 1)}}, path)
    return path


# A minimal hybrid config (no mmseg:: bases, which take seconds to parse): the export only
# rewrites its model and imports; the real configs' round trip is in tests/for_mmseg.
SMALL_HYBRID_CONFIG = """
custom_imports = dict(imports=['hybridkt_ext.for_mmseg'], allow_failed_imports=False)
model = dict(type='EncoderDecoder',
             backbone=dict(type='HybridBackbone', student=dict(type='ResNetV1c', depth=18),
                           teacher=dict(type='ResNetV1c', depth=50, checkpoint='t.pth'),
                           balance=dict(mode='dynamic')),
             decode_head=dict(type='FCNHead', num_classes=19))
custom_hooks = [dict(type='HybridKTHook')]
"""


def _small_config(tmp_path: Path) -> Path:
    path = tmp_path / "hybrid_cfg.py"
    path.write_text(SMALL_HYBRID_CONFIG)
    return path


def _export(tmp_path, checkpoint: Path, *extra: str) -> str | None:
    args = [str(_small_config(tmp_path)), str(checkpoint), str(tmp_path / "out" / "student.pth"),
            "--plain-config", str(tmp_path / "out" / "student_cfg.py"), *extra]
    try:
        _export_tool().main(args)
    except SystemExit as done:
        return str(done.code)
    return None


def _outputs(tmp_path) -> list[str]:
    out = tmp_path / "out"
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


@pytest.mark.parametrize("content, fragment", [
    (b"", "empty (0 bytes)"),
    (b"not a checkpoint\n", "cannot read it as a checkpoint"),
    ("truncated", "truncated"),
    ("teacher", "is not a HybridBackbone checkpoint"),
])
def test_export_of_a_broken_or_foreign_checkpoint_writes_nothing(tmp_path, content,
                                                                  fragment):
    checkpoint = tmp_path / "iter_2.pth"
    if content == "truncated":
        data = _hybrid_checkpoint(checkpoint).read_bytes()
        checkpoint.write_bytes(data[: len(data) // 2])
    elif content == "teacher":  # a plain (non-hybrid) mmseg checkpoint
        torch.save({"meta": {}, "state_dict": {"backbone.conv1.weight": torch.ones(1)}},
                   checkpoint)
    else:
        checkpoint.write_bytes(content)
    message = _export(tmp_path, checkpoint)
    assert message is not None and fragment in message and str(checkpoint) in message
    assert not message.startswith("'")  # not a quoted KeyError repr
    assert _outputs(tmp_path) == []


def test_export_refuses_to_overwrite_either_output_unless_asked(tmp_path):
    checkpoint = _hybrid_checkpoint(tmp_path / "iter_2.pth")
    assert _export(tmp_path, checkpoint) is None
    assert _outputs(tmp_path) == ["student.pth", "student_cfg.py"]
    (tmp_path / "out" / "student.pth").unlink()  # only the config is left: still refused
    message = _export(tmp_path, checkpoint)
    assert "student_cfg.py exists; pass --overwrite" in message
    assert _outputs(tmp_path) == ["student_cfg.py"]
    assert _export(tmp_path, checkpoint, "--overwrite") is None
    exported = torch.load(tmp_path / "out" / "student.pth")["state_dict"]
    assert sorted(exported) == ["backbone.conv1.weight", "decode_head.conv_seg.weight"]


def test_export_onto_its_own_input_is_refused(tmp_path):
    checkpoint = _hybrid_checkpoint(tmp_path / "iter_2.pth")
    data = checkpoint.read_bytes()
    try:
        _export_tool().main([str(_small_config(tmp_path)), str(checkpoint), str(checkpoint),
                             "--overwrite"])
    except SystemExit as done:
        assert "which this export reads or writes" in str(done.code)
    else:
        pytest.fail("exporting onto the input checkpoint was not refused")
    assert checkpoint.read_bytes() == data


@pytest.mark.parametrize("case", ["out_is_the_plain_config", "plain_config_is_the_input"])
def test_export_outputs_that_are_each_other_or_the_config_are_refused(tmp_path, case):
    checkpoint = _hybrid_checkpoint(tmp_path / "iter_2.pth")
    config = _small_config(tmp_path)
    config_text = config.read_text()
    out = tmp_path / "x.py"
    out.write_text("# the user's file\n")
    args = ([str(config), str(checkpoint), str(out), "--plain-config", str(out)]
            if case == "out_is_the_plain_config"
            else [str(config), str(checkpoint), str(tmp_path / "student.pth"), "--plain-config",
                  str(config), "--overwrite"])
    with pytest.raises(SystemExit) as done:
        _export_tool().main(args)
    assert "which this export reads or writes" in str(done.value.code)
    assert out.read_text() == "# the user's file\n" and config.read_text() == config_text
    assert not (tmp_path / "student.pth").exists()


def test_export_failing_mid_write_leaves_neither_output(tmp_path, monkeypatch):
    import hybridkt_ext.core.export as export

    checkpoint = _hybrid_checkpoint(tmp_path / "iter_2.pth")

    def save_half_then_fail(obj, f):
        f.write(b"PK\x03\x04 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export.torch, "save", save_half_then_fail)
    message = _export(tmp_path, checkpoint)
    assert "No space left on device" in message
    assert _outputs(tmp_path) == []  # no checkpoint, no config, no temporary files
