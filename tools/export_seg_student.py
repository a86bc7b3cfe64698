#!/usr/bin/env python
"""Export the student of a hybrid-forward mmseg checkpoint for the plain student config.

``hybridkt-export-seg-student`` run from the clone (hybridkt_ext/cli/export_seg_student.py has the
examples); the set-up installs the package editable, so this imports the checkout's code.
"""
from hybridkt_ext.cli.export_seg_student import main

if __name__ == "__main__":
    main()
