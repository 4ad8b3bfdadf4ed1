#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, in build-fuzz/) and runs each one for a bounded
# time on its committed corpus, as ctest tests labelled "fuzz" (docs/fuzzing.md).
#   scripts/fuzz.sh            every target for 20 s (what scripts/test.sh runs)
#   scripts/fuzz.sh 600        every target for 10 minutes
# Without a clang that links -fsanitize=fuzzer it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"

probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char *, unsigned long) { return 0; }' \
  > "$probe/probe.cc"
if ! command -v clang++ >/dev/null ||
   ! clang++ -fsanitize=fuzzer,address,undefined "$probe/probe.cc" -o "$probe/probe" 2>/dev/null; then
  echo "fuzz: skipped (no clang++ with libFuzzer; Debian: clang libclang-rt-14-dev)"
  exit 0
fi

cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DWEIGHTSYNC_FUZZ=ON \
  -DWEIGHTSYNC_BUILD_TESTS=OFF -DWEIGHTSYNC_BUILD_BENCH=OFF -DWEIGHTSYNC_BUILD_PYTHON=OFF \
  -DWEIGHTSYNC_CUDA=OFF -DWEIGHTSYNC_FUZZ_SECONDS="$seconds" >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target weightsync_fuzzers
ctest --test-dir build-fuzz -L fuzz --output-on-failure -j"$(nproc)"
