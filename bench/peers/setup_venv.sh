#!/usr/bin/env bash
# Creates (or completes) the Python venv of the peer benchmarks,
# .deps/peers-venv (git-ignored with the rest of .deps/):
#   - torch 2.9.1 from the wheel scripts/bootstrap.sh downloaded into
#     .deps/wheels (--no-deps), with the two NVIDIA runtime wheels next to it
#     that its libtorch_cpu.so needs to load;
#   - the exactly pinned closure of bench/peers/requirements.txt (--no-deps,
#     so pip never resolves anything), which includes the CUDA libraries
#     `import torch` needs to load even on a CPU-only machine (see there).
# Idempotent: when the venv is complete (a stamp holding a hash of the
# requirements, this script and the wheel names matches) it returns at once.
#   bench/peers/setup_venv.sh [--force] [--check]
#     --force  rebuild the venv from scratch
#     --check  also import torch/transformers/peft/onnxruntime and run a tensor op
# DYLORA_PEERS_VENV overrides the venv directory; PYTHON the interpreter
# (must be CPython 3.11: the wheels are cp311).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${DYLORA_PEERS_VENV:-$ROOT/.deps/peers-venv}"
WHEELS="$ROOT/.deps/wheels"
REQ="$ROOT/bench/peers/requirements.txt"
PYTHON="${PYTHON:-python3}"
log() { printf '[peers-venv] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0 check=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --check) check=1 ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg (see --help)" ;;
  esac
done

shopt -s nullglob
torch_wheels=("$WHEELS"/torch-2.9.1-cp311-cp311-manylinux*_x86_64.whl)
cuda_wheels=("$WHEELS"/nvidia_cuda_runtime_cu12-12.8.90-*.whl
  "$WHEELS"/nvidia_cuda_cupti_cu12-12.8.90-*.whl)
shopt -u nullglob
[[ ${#torch_wheels[@]} -eq 1 ]] ||
  die "need exactly one torch-2.9.1-cp311 wheel in $WHEELS (found ${#torch_wheels[@]}); run scripts/bootstrap.sh"
[[ ${#cuda_wheels[@]} -eq 2 ]] ||
  die "need nvidia_cuda_runtime_cu12-12.8.90 and nvidia_cuda_cupti_cu12-12.8.90 wheels in $WHEELS; run scripts/bootstrap.sh"

want="$(
  {
    sha256sum "$REQ" "${BASH_SOURCE[0]}" | cut -d' ' -f1
    for w in "${torch_wheels[@]}" "${cuda_wheels[@]}"; do basename "$w"; done
  } | sha256sum | cut -d' ' -f1
)"
stamp="$VENV/.dylora-peers-stamp"

smoke() {
  "$VENV/bin/python" - <<'EOF'
import torch, transformers, peft, onnx, onnxruntime
assert float(torch.ones(2).sum()) == 2.0
print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
      f"peft {peft.__version__}, onnx {onnx.__version__}, "
      f"onnxruntime {onnxruntime.__version__}: ok")
EOF
}

if [[ $force -eq 0 && -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/python" ]]; then
  [[ $check -eq 1 ]] && smoke >&2
  exit 0
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
  die "$PYTHON is $("$PYTHON" --version 2>&1), the pinned wheels need CPython 3.11 (set PYTHON=...)"

start=$(date +%s)
if [[ $force -eq 1 ]]; then
  log "removing $VENV"
  rm -rf "$VENV"
fi
rm -f "$stamp"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)
log "installing torch 2.9.1 from $WHEELS (--no-deps; about 900 MB unpacked)"
"${pip[@]}" install --quiet --no-deps "${torch_wheels[@]}" "${cuda_wheels[@]}"
log "installing the pinned closure (with the CUDA libraries import torch links, ~2.5 GB download) of $(realpath --relative-to="$ROOT" "$REQ") (--no-deps)"
"${pip[@]}" install --quiet --no-deps -r "$REQ"
smoke >&2
printf '%s\n' "$want" >"$stamp"
log "ready in $(($(date +%s) - start)) s: $VENV"
