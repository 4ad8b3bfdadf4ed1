#!/usr/bin/env bash
# The test command: installs what is missing and builds (scripts/setup.sh), checks formatting and
# clang-tidy (scripts/lint.py: what it checks and against which base), then runs every test.
# GPU-labelled tests skip themselves on machines without a GPU. Then every fuzz target runs for
# 20 s on its committed corpus (scripts/fuzz.sh: its own clang build in build-fuzz/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/lint.py
ctest --test-dir build --output-on-failure -j2 --timeout 600
scripts/fuzz.sh 20
