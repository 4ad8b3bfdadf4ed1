#!/usr/bin/env bash
# Installs every dependency of weightsync on a fresh Debian 12 (Debian packages + PyPI only) and builds it.
# Idempotent: re-running only rebuilds what changed. --deps-only: install, do not build.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libucx-dev ucx-utils
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libxxhash-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  pybind11-dev python3-dev python3-pybind11 python3-numpy python3-pytest python3-torch python3-pip python3-venv
  clang-format clang-tidy
  clang libclang-rt-14-dev  # libFuzzer and the sanitizers for scripts/fuzz.sh
  libcurl4-openssl-dev etcd-server etcd-client  # the etcd control store and its tests
  prometheus-cpp-dev python3-prometheus-client  # /metrics and its scrape test
  libsodium-dev  # the job secret's HMAC
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# safetensors from PyPI (Debian 12 has no python3-safetensors): the filesystem transport's
# interop test reads its checkpoints with it (tests/python/test_filesystem.py).
if ! /usr/bin/python3 -c 'import safetensors' 2>/dev/null; then
  /usr/bin/python3 -m pip install -q --break-system-packages --root-user-action=ignore safetensors
fi

if [ "${1:-}" = "--deps-only" ]; then
  exit 0
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython_EXECUTABLE=/usr/bin/python3
cmake --build build -j"$(nproc)"
echo "weightsync built: build/weightsync"
