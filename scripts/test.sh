#!/usr/bin/env bash
# The README's test command: installs dependencies, builds with warnings as errors, and runs
# every unit and integration test under ctest. Exits non-zero when any test fails.
#
#   scripts/test.sh                 # build/ (RelWithDebInfo)
#   BUILD_DIR=build-asan SANITIZE=ON scripts/test.sh   # the same under ASan and UBSan
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

BUILD_DIR=${BUILD_DIR:-build}
SANITIZE=${SANITIZE:-OFF}
BUILD_TYPE=RelWithDebInfo
if [ "$SANITIZE" = "ON" ]; then BUILD_TYPE=Debug; fi

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DTANDEM_WERROR=ON \
  -DTANDEM_SANITIZE="$SANITIZE"
cmake --build "$BUILD_DIR" -j"$(nproc)"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 600
