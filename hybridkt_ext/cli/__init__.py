"""The command-line tools, one module each, installed as console commands (``hybridkt-*``,
see pyproject.toml) and runnable as ``python -m hybridkt_ext.cli.<tool>``. The clone's
``tools/*.py`` are thin wrappers over these modules."""
