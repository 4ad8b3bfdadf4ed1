#!/usr/bin/env bash
# The test command: installs what is missing and builds (scripts/setup.sh), checks formatting and
# clang-tidy (scripts/lint.py: what it checks and against which base), then runs every test.
# GPU-labelled tests skip themselves on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/lint.py
ctest --test-dir build --output-on-failure -j2 --timeout 600
