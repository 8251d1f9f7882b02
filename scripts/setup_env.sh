#!/usr/bin/env bash
# Create .venv and install polyclinic into it, without ever pulling CUDA wheels by accident.
#
# torch is unpinned in pyproject.toml (users bring their own build). For this local install
# path only, when no torch is importable we install the CPU build TORCH_SPEC first, then
# constrain every later install to the torch that is present, so pip never "upgrades" it.
#   TORCH_SPEC   torch requirement installed when none is present (default: torch==2.13.0)
#   TORCH_INDEX  optional --index-url for torch (e.g. https://download.pytorch.org/whl/cpu)
#   VENV         virtual environment folder (default: .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
PY=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

# pip prints one "Location ... is ignored" line per package for local mirrors that lack it: noise, not errors.
quiet_pip() {
  local log rc=0
  log=$(mktemp)
  "$VPY" -m pip "$@" >"$log" 2>&1 || rc=$?
  grep -v "^WARNING: Location" "$log" >&2 || true
  rm -f "$log"
  return "$rc"
}

[ -f "$VENV/.pip-upgraded" ] || { quiet_pip install -q --upgrade pip wheel setuptools && touch "$VENV/.pip-upgraded"; }

if ! "$VPY" -W ignore -c "import torch" 2>/dev/null; then
  echo "[setup] no torch in $VENV: installing $TORCH_SPEC (CPU build where the index provides one)"
  if [ -n "${TORCH_INDEX:-}" ]; then
    quiet_pip install -q "$TORCH_SPEC" --index-url "$TORCH_INDEX"
  else
    quiet_pip install -q "$TORCH_SPEC"
  fi
fi
TORCH_VERSION=$("$VPY" -W ignore -c "import torch; print(torch.__version__)" 2>/dev/null)
echo "torch==$TORCH_VERSION" > constraints.local.txt
echo "[setup] torch $TORCH_VERSION present; installing polyclinic[dev] constrained to it"
quiet_pip install -q -c constraints.local.txt -e ".[dev]"
"$VPY" -c "import polyclinic, transformers, accelerate, datasets, sentence_transformers; print('[setup] ok: polyclinic', polyclinic.__version__, '| transformers', transformers.__version__, '| accelerate', accelerate.__version__, '| datasets', datasets.__version__)"
