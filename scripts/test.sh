#!/usr/bin/env bash
# The test command: installs what is missing, builds everything, runs every
# test. Idempotent; reuses the build tree and ccache when they exist.
#   scripts/test.sh [ctest args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${DYLORA_BUILD_DIR:-$ROOT/build}"
JOBS="${DYLORA_JOBS:-$(nproc)}"

"$ROOT/scripts/bootstrap.sh" --interop
echo "[test] configuring $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja >/dev/null
echo "[test] building with $JOBS jobs"
start=$(date +%s)
cmake --build "$BUILD" -j "$JOBS"
echo "[test] build took $(( $(date +%s) - start )) s"
echo "[test] running tests"
cd "$BUILD"
ctest --output-on-failure -j "$JOBS" "$@"
