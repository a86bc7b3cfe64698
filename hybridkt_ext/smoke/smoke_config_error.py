"""The error of a config the smoke tool cannot run as asked, in every framework.

Its own module: the detectron2 smoke run must not import mmengine (the OpenMMLab one's home),
and the tool catches one type whatever the framework.
"""
from __future__ import annotations


class SmokeConfigError(ValueError):
    """The config cannot be smoke-tested as asked (says why and what to do)."""
