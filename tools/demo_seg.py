#!/usr/bin/env python
"""The segmentation demo (`make demo`): GTA5-style teacher, Cityscapes student, generated data.

The clone's wrapper of hybridkt_ext/cli/demo_seg.py, whose docstring has the examples;
installed, the same tool is the command ``hybridkt-demo-seg``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from hybridkt_ext.cli.demo_seg import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
