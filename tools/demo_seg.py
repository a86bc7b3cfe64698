#!/usr/bin/env python
"""The segmentation demo (`make demo`): GTA5-style teacher, Cityscapes student, generated data.

``hybridkt-demo-seg`` run from the clone (hybridkt_ext/cli/demo_seg.py has the examples); the set-up
installs the package editable, so this imports the checkout's code.
"""
import sys

from hybridkt_ext.cli.demo_seg import main

if __name__ == "__main__":
    sys.exit(main())
