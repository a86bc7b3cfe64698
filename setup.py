"""A shim for tools that still call ``python setup.py ...``: everything is in pyproject.toml.

``pip install -e .`` and ``pip wheel .`` go through pyproject.toml's build backend, which runs
this file too; ``setup()`` without arguments adds nothing, so they build the same package.
"""
from setuptools import setup

setup()
