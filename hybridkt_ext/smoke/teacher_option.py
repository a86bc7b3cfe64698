"""What ``--teacher`` names, in each framework's own words.

``config:<file or scoped name>`` is the config the teacher was trained with (an mmseg, mmdet or
mmpretrain config, ``mmseg::...`` included, or a detectron2 YAML/model-zoo name);
``torchvision.<name>`` and ``timm.<name>`` build that model. The weights are random unless a
checkpoint is named: a smoke run checks the machinery, not the transfer.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

ZOO_PREFIXES = ("torchvision.", "timm.")
TEACHER_FORMS = "config:<file or mmseg::/mmdet:: name>, torchvision.<name> or timm.<name>"


class TeacherOptionError(ValueError):
    """``--teacher`` names no teacher this tool can build."""


@dataclass(frozen=True)
class TeacherOption:
    """A parsed ``--teacher`` (and ``--teacher-checkpoint``)."""

    config: str | None = None  # the teacher's training config
    zoo_name: str | None = None  # 'torchvision.resnet18' / 'timm.convnext_tiny'
    checkpoint: str | None = None
    # Further teacher keys of an OpenMMLab HybridBackbone (``--teacher-option k=v``), e.g.
    # dynamic_img_size=True for a timm ViT fed the smoke run's image size.
    options: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, checkpoint: str | None = None,
              options: list[str] = ()) -> "TeacherOption":
        keys = dict(_key_value(item) for item in options)
        if text.startswith("config:") and len(text) > len("config:"):
            return cls(config=text[len("config:"):], checkpoint=checkpoint, options=keys)
        if text.startswith(ZOO_PREFIXES) and "." in text and not text.endswith("."):
            return cls(zoo_name=text, checkpoint=checkpoint, options=keys)
        raise TeacherOptionError(f"--teacher {text!r}: name it as {TEACHER_FORMS}.")

    def openmmlab_teacher(self) -> dict:
        """The ``teacher=`` dict of an OpenMMLab ``HybridBackbone``."""
        loading = (dict(checkpoint=self.checkpoint) if self.checkpoint
                   else dict(allow_random_init=True))
        if self.config:
            return dict(config=self.config, **loading, **self.options)
        return dict(type=self.zoo_name, **loading, **self.options)

    def detectron2_options(self) -> list[str]:
        """The ``MODEL.HYBRIDKT.TEACHER.*`` settings of a detectron2 YAML config."""
        key = "MODEL.HYBRIDKT.TEACHER."
        if self.options:
            raise TeacherOptionError(
                f"--teacher-option {sorted(self.options)}: a detectron2 YAML teacher takes only "
                f"MODEL.HYBRIDKT.TEACHER.* keys; set them in the config instead.")
        if self.config:
            opts = [key + "CONFIG", self.config]
        else:
            framework, arch = self.zoo_name.split(".", 1)
            opts = [key + "FRAMEWORK", framework, key + "ARCH", arch]
        if self.checkpoint:
            return opts + [key + "WEIGHTS", self.checkpoint]
        return opts + [key + "ALLOW_RANDOM_INIT", "True"]


def _key_value(item: str) -> tuple[str, object]:
    key, sep, text = item.partition("=")
    if not sep or not key.isidentifier():
        raise TeacherOptionError(f"--teacher-option {item!r}: write KEY=VALUE, e.g. "
                                 f"dynamic_img_size=True.")
    try:
        return key, ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return key, text  # a plain string
