#!/usr/bin/env bash
# The test command of the README: install dependencies, build, run every ctest label.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 1500 "$@"
