#!/usr/bin/env bash
# Builds the project virtual environment at .venv with the verified stack: the versions pinned
# below and in pyproject.toml, checked together on CPU.
#
# Idempotent: a stamp records the hash of this script and of pyproject.toml, so a second run
# with nothing changed only checks the imports (seconds). mmcv is compiled from the registry's
# source archive so pip caches the wheel; later builds of .venv reuse it (~10 s instead of ~9 min).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
PIP="$VENV/bin/pip"
# -qq: pip's own notices (index locations, deprecations) stay off the console; errors show.
PIP_QUIET=-qq
STAMP="$VENV/.hybridkt_stack"
# The extras to install (pyproject.toml): everything by default, as the tests need. A detection
# user without mmsegmentation: HYBRIDKT_EXTRAS=mmdet bash tools/setup_env.sh.
EXTRAS=${HYBRIDKT_EXTRAS:-mmseg,mmdet,mmpretrain,dev,docs}
want=$( (cat tools/setup_env.sh pyproject.toml; echo "$EXTRAS") | sha256sum | cut -d' ' -f1)
# What must import afterwards, per extra.
imports="torch, torchvision, timm, safetensors, mmcv.ops, hybridkt_ext"
for extra in ${EXTRAS//,/ }; do
  case $extra in
    mmseg) imports+=", mmseg.models" ;;
    mmdet) imports+=", mmdet.models" ;;
    mmpretrain) imports+=", mmpretrain.models" ;;
    docs) imports+=", mkdocs, material, mkdocstrings" ;;
  esac
done

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && "$VENV/bin/python" -c "import $imports" 2>/dev/null; then
  echo "setup: .venv is up to date"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$PIP" install $PIP_QUIET --upgrade "pip>=24"
# The CPU wheel lying on disk cannot pair with torchvision 0.28.0: exclude it explicitly.
"$PIP" install $PIP_QUIET "torch==2.13.0,!=2.13.0+cpu" torchvision==0.28.0
# mmcv 2.1.0's setup.py imports pkg_resources: setuptools must stay below 81.
"$PIP" install $PIP_QUIET "setuptools>=77,<81" wheel ninja numpy
if ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
  echo "setup: installing mmcv 2.1.0 with ops (compiles from source the first time, ~10 min on 2 cores)"
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "$PIP" install $PIP_QUIET --no-build-isolation mmcv==2.1.0
fi
# setuptools warns on every editable install that a same-named folder may shadow the package:
# that folder is the package itself here.
PYTHONWARNINGS=ignore "$PIP" install $PIP_QUIET --no-build-isolation -e ".[$EXTRAS]"
"$VENV/bin/python" -c "import $imports"
echo "$want" > "$STAMP"
echo "setup: .venv ready"
