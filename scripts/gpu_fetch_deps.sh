#!/usr/bin/env bash
# Fetches what scripts/gpu_run.sh carries to the GPU host, which reaches no network:
#   .deps/debs/*.deb          Debian 12 packages with the headers and libraries the build needs
#                             (unpacked there under /tmp/deps, never installed)
#   .whl/libucx_cu13-*.whl    PyPI's CUDA-enabled UCX (the GPU host's Python is 3.12)
#   .whl/accelerate-*.whl     transformers' FP8 loader needs accelerate (pure Python); the hf
#                             mode unpacks it where the host has none
# Run on this (Debian 12) machine from the repository root; both folders are git-ignored.
# Then, with the device tool: carry [".deps", ".whl"] and run `bash scripts/gpu_run.sh full`.
set -euo pipefail
cd "$(dirname "$0")/.."

UCX_WHEEL_VERSION=${UCX_WHEEL_VERSION:-1.22.0}
DEBS=(
  libfmt-dev libfmt9 libspdlog-dev libspdlog1.10 nlohmann-json3-dev libcli11-dev
  libxxhash-dev libxxhash0 libgtest-dev libgmock-dev libbenchmark-dev libbenchmark1debian
)

mkdir -p .deps/debs .whl
(
  cd .deps/debs
  missing=()
  for p in "${DEBS[@]}"; do
    compgen -G "${p}_*.deb" >/dev/null || missing+=("$p")
  done
  if ((${#missing[@]})); then
    apt-get download "${missing[@]}"
  fi
)
if ! compgen -G ".whl/libucx_cu13-*.whl" >/dev/null; then
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "libucx-cu13==${UCX_WHEEL_VERSION}"
fi
if ! compgen -G ".whl/accelerate-*.whl" >/dev/null; then
  python3 -m pip download --no-deps --only-binary=:all: -d .whl "accelerate==${ACCELERATE_VERSION:-1.15.0}"
fi
ls -l .deps/debs .whl
du -shc .deps .whl | tail -1
