#!/usr/bin/env python
"""Test (and evaluate) a detector checkpoint (mmdet's tools/test.py CLI).

``hybridkt-test-det`` run from the clone (hybridkt_ext/cli/test_det.py has the examples); the set-up
installs the package editable, so this imports the checkout's code.
"""
from hybridkt_ext.cli.test_det import main

if __name__ == "__main__":
    main()
