#!/usr/bin/env bash
# The main job on a fresh machine, with embedded defaults and no flags:
# install everything, build, unpack the real all-MiniLM-L6-v2, train a DyLoRA
# adapter (ranks 1..8) on SST-2 from ../shared/data, and print its accuracy
# at every rank. Serving and querying join when dylora-serve and
# dylora-client land (issues 4 and 5).
#   scripts/quickstart.sh [extra dylora-train flags...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${DYLORA_BUILD_DIR:-$ROOT/build}"
OUT="${DYLORA_QUICKSTART_DIR:-$ROOT/runs/quickstart-sst2}"
step() { printf '\n== %s\n' "$*"; }
start=$(date +%s)

step "1/3 installing dependencies (Debian packages, LibTorch, the real model)"
"$ROOT/scripts/bootstrap.sh"

step "2/3 building (ccache and a precompiled LibTorch header keep rebuilds short)"
cmake -S "$ROOT" -B "$BUILD" -G Ninja >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target dylora-train

step "3/3 training DyLoRA r=1..8 on SST-2 (all-MiniLM-L6-v2, 300 steps), then every rank on the dev set"
"$BUILD/trainer/dylora-train" --task sst2 --output "$OUT" --overwrite \
  --max-steps 300 --batch-size 32 --max-seq-len 64 --lr 2e-3 --seed 1 "$@"

printf '\nquickstart finished in %ss; adapter, rank_table.{csv,json,svg} in %s\n' \
  "$(( $(date +%s) - start ))" "$OUT"
