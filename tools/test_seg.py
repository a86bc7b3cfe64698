#!/usr/bin/env python
"""Test (and evaluate) a segmentor checkpoint with mmseg's IoUMetric (mmseg's tools/test.py CLI).

``hybridkt-test-seg`` run from the clone (hybridkt_ext/cli/test_seg.py has the examples); the set-up
installs the package editable, so this imports the checkout's code.
"""
from hybridkt_ext.cli.test_seg import main

if __name__ == "__main__":
    main()
