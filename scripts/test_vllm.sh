#!/usr/bin/env bash
# Tests weightsync as a vLLM weight-transfer backend against the real vLLM package from PyPI
# (tests/python/test_vllm_transfer.py; the normal suite skips them, having no vLLM).
#
# 1. scripts/setup.sh --deps-only: the Debian packages the C++ core needs.
# 2. A venv of Debian's /usr/bin/python3 with vllm==$VLLM_VERSION and its torch from PyPI
#    (about 9 GB: the CUDA wheels; vLLM's weight-transfer modules import without a GPU),
#    created once and kept outside the repository: $WEIGHTSYNC_VLLM_VENV, by default
#    ~/.cache/weightsync/vllm-$VLLM_VERSION. Delete it to start over.
# 3. `pip install .` of this checkout into the venv, whenever its sources changed: the C++ core
#    is built for the venv's interpreter (build dir build-pip/, ccache when present); the
#    installed metadata carries the `vllm.general_plugins` entry point vLLM's loader reads.
# 4. pytest on the vLLM tests (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

VLLM_VERSION="${VLLM_VERSION:-0.33.0}"
VENV="${WEIGHTSYNC_VLLM_VENV:-$HOME/.cache/weightsync/vllm-$VLLM_VERSION}"

scripts/setup.sh --deps-only

if [ ! -f "$VENV/.complete" ]; then
  echo "== creating $VENV (vllm==$VLLM_VERSION from PyPI, about 9 GB; once)"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "vllm==$VLLM_VERSION" pytest "scikit-build-core>=0.10" "pybind11>=2.10"
  touch "$VENV/.complete"
fi

# Everything `pip install .` reads, tracked or not (git ls-files honours .gitignore).
sources=$(git ls-files -z --cached --others --exclude-standard -- pyproject.toml CMakeLists.txt \
            cmake src bindings README.md | xargs -0 sha1sum | sha1sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.weightsync-sources" 2>/dev/null)" != "$sources" ]; then
  echo "== installing this checkout of weightsync into $VENV"
  options=()
  if command -v ccache >/dev/null; then
    options+=(-C cmake.define.CMAKE_CXX_COMPILER_LAUNCHER=ccache
              -C cmake.define.CMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  fi
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$VENV/bin/pip" install -q --no-deps \
    --no-build-isolation ${options[@]+"${options[@]}"} .
  echo "$sources" > "$VENV/.weightsync-sources"
fi

echo "== vLLM $("$VENV/bin/python" -c 'import vllm; print(vllm.__version__)'), venv $(du -sh "$VENV" | cut -f1)"
# Run from tests/python, so the installed package is imported, not bindings/python.
cd tests/python
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider test_vllm_transfer.py "$@"
