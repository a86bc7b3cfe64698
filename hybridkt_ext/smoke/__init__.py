"""``hybridkt-smoke``: run any mmseg, mmdet or detectron2 config plain and hybrid for a few
iterations on generated data, and check the exported student (``cli/smoke.py``).

The pieces: ``teacher_option`` (what ``--teacher`` names), ``config_kind`` (which framework a
config is for), ``openmmlab_smoke`` and ``detectron2_smoke`` (the runs, with the framework's
own Runner and trainer), ``synthetic_coco`` (mmdet data with masks), ``smoke_report`` (what is
printed).
"""
