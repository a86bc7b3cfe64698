#!/usr/bin/env python
"""Which backbones of the configs mmseg ships hybrid forward can use, as a markdown table.

The clone's wrapper of hybridkt_ext/cli/backbone_coverage.py, whose docstring has the examples;
installed, the same tool is the command ``hybridkt-backbone-coverage``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from hybridkt_ext.cli.backbone_coverage import main  # noqa: E402

if __name__ == "__main__":
    main()
