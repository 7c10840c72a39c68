#!/usr/bin/env bash
# The dylora Docker image built and run for real, end to end:
#   a. Docker: installs docker.io (and debootstrap) with apt when missing and
#      starts dockerd when no daemon answers;
#   b. base images: makes debian:12 and debian:12-slim with debootstrap when
#      absent (no registry needed);
#   c. builds the CPU image: --prebuilt from the host build (build/ and
#      .deps/, about a minute), otherwise the full Dockerfile (bootstrap +
#      CMake inside, 20+ minutes on 2 cores);
#   d. trains a tiny sst2 adapter on the host (dylora-train) and runs the image
#      with --network host on free ports, the adapter mounted read-only;
#   e. waits for the image's own HEALTHCHECK to report healthy;
#   f. runs dylora-client infer and sweep from the host against it;
#   g. has a host Prometheus scrape it (target up, dylora_ series present,
#      the alert rules of prometheus/alerts.yml evaluating);
#   h. SIGTERM: the container must drain and exit 0;
#   i. prints the image size and every step's wall time.
# --compose adds: docker-compose brings up deploy/docker-compose.yml's
# dylora-serve and Prometheus from local images (docker-compose.local.yml),
# Prometheus must scrape the server and evaluate alerts.yml, then down -v.
#
#   deploy/smoke.sh --prebuilt            # CI: image from the host build
#   deploy/smoke.sh --prebuilt --compose  # and the Compose check
#   deploy/smoke.sh                       # full image build (slow)
#
# Exit status: 0 all passed; 77 no Docker daemon could be had (not root, apt
# or dockerd failing), so ctest reports a skip; anything else a failure.
# The container, Prometheus, the compose project and the temp dir are removed
# on exit; a dockerd this script started keeps running (and the images stay)
# so a rerun is quick.
#
# Environment: DOCKER (client, default /usr/bin/docker: the docker.io one;
# a newer client earlier on PATH may demand a buildx plugin), IMAGE (tag;
# default dylora:prebuilt or dylora:latest), DYLORA_BUILD_DIR (build),
# DYLORA_DEPS_DIR (.deps), DYLORA_GLUE_DIR (GLUE data, default: the
# binaries' built-in one), DEBIAN_MIRROR, CA_BUNDLE (build secret, default
# /etc/ssl/certs/ca-certificates.crt when present), HEALTH_TIMEOUT_S (180),
# BUILD_NETWORK (docker build --network; default host when the daemon has no
# default bridge, as under dockerd --bridge=none).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${DYLORA_BUILD_DIR:-$ROOT/build}"
DEPS="${DYLORA_DEPS_DIR:-$ROOT/.deps}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
HEALTH_TIMEOUT_S="${HEALTH_TIMEOUT_S:-180}"
SKIP=77

MODE=full
COMPOSE=0
SINGLE=1
BUILD_IMAGE=1
INSTALL=1
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
  cat <<'EOF'
Options:
  --prebuilt      build the image from the host build (build/, .deps/)
  --compose       also run the docker-compose check
  --compose-only  only the docker-compose check (after steps a-c)
  --no-build      use the existing image (IMAGE) as it is
  --no-install    never apt-get install (skip, exit 77, when docker is missing)
  -h, --help      this text
EOF
}
while (($#)); do
  case "$1" in
    --prebuilt) MODE=prebuilt ;;
    --compose) COMPOSE=1 ;;
    --compose-only) COMPOSE=1 SINGLE=0 ;;
    --no-build) BUILD_IMAGE=0 ;;
    --no-install) INSTALL=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "smoke.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -z "${IMAGE:-}" ]]; then
  if [[ $MODE == prebuilt ]]; then IMAGE=dylora:prebuilt; else IMAGE=dylora:latest; fi
fi
if [[ -n "${DOCKER:-}" ]]; then :
elif [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker
else DOCKER=docker; fi
export DOCKER_BUILDKIT=1
# docker-compose 1.x would otherwise shell out to the first `docker` on PATH.
export COMPOSE_DOCKER_CLI_BUILD=0

SERVE="$BUILD/server/app/dylora-serve"
CLIENT="$BUILD/client/dylora-client"
TRAIN="$BUILD/trainer/dylora-train"

log() { printf '[smoke] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
skip() { log "SKIP: $*"; exit "$SKIP"; }

WORK="$(mktemp -d /tmp/dylora-smoke.XXXXXX)"
CONTAINER=""
PROM_PID=""
COMPOSE_CMD=()
STEP_NAMES=()
STEP_TIMES=()
SCRIPT_START=$(date +%s.%N)

elapsed_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

summary() {
  local rc="$1" i
  printf '\n[smoke] step times (wall, s):\n' >&2
  for i in "${!STEP_NAMES[@]}"; do
    printf '[smoke]   %-34s %8s\n' "${STEP_NAMES[$i]}" "${STEP_TIMES[$i]}" >&2
  done
  printf '[smoke]   %-34s %8s\n' "total" "$(elapsed_since "$SCRIPT_START")" >&2
  local what="$MODE"
  ((BUILD_IMAGE)) || what="existing image"
  if ((rc == 0)); then log "PASS ($what: $IMAGE)"
  elif ((rc == SKIP)); then log "SKIPPED (exit $SKIP)"
  else log "FAILED (exit $rc)"; fi
}

cleanup() {
  local rc=$?
  set +e
  if ((rc != 0 && rc != SKIP)) && [[ -n "$CONTAINER" ]]; then
    log "container log (last 40 lines):"
    "$DOCKER" logs --tail 40 "$CONTAINER" 2>&1 | sed 's/^/    /' >&2
  fi
  if ((rc != 0 && rc != SKIP)) && [[ -f "$WORK/prometheus.log" ]]; then
    log "prometheus log (last 15 lines):"
    tail -n 15 "$WORK/prometheus.log" | sed 's/^/    /' >&2
  fi
  [[ -n "$CONTAINER" ]] && "$DOCKER" rm -f -v "$CONTAINER" >/dev/null 2>&1
  if [[ -n "$PROM_PID" ]]; then
    kill "$PROM_PID" 2>/dev/null
    wait "$PROM_PID" 2>/dev/null
  fi
  if ((${#COMPOSE_CMD[@]})); then
    if ((rc != 0 && rc != SKIP)); then
      "${COMPOSE_CMD[@]}" logs --tail 20 2>&1 | sed 's/^/    /' >&2
    fi
    "${COMPOSE_CMD[@]}" down -v --remove-orphans >/dev/null 2>&1
  fi
  rm -rf "$WORK"
  summary "$rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# step NAME FUNCTION [ARGS...]: runs it, timed.
step() {
  local name="$1" start
  shift
  log "== $name"
  start=$(date +%s.%N)
  "$@"
  STEP_NAMES+=("$name")
  STEP_TIMES+=("$(elapsed_since "$start")")
  log "   $name: ${STEP_TIMES[-1]} s"
}

# Free TCP ports on 127.0.0.1, all held until all are known (no duplicates).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# GET $1 and print it; empty output when it fails.
http_get() { curl -fsS --max-time 5 "$1" 2>/dev/null || true; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1; fi
}

# ------------------------------------------------------------- a. Docker
daemon_answers() { "$DOCKER" info >/dev/null 2>&1; }

ensure_docker() {
  local missing=()
  command -v "$DOCKER" >/dev/null 2>&1 || missing+=(docker.io)
  ((COMPOSE)) && ! command -v docker-compose >/dev/null 2>&1 && missing+=(docker-compose)
  if ((${#missing[@]})); then
    ((INSTALL)) || skip "missing ${missing[*]} (--no-install)"
    log "installing ${missing[*]} with apt"
    as_root true || skip "no $DOCKER and not root: cannot install docker.io"
    { as_root apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}"; } \
      >"$WORK/apt.log" 2>&1 || { tail -n 20 "$WORK/apt.log" >&2; skip "apt-get install ${missing[*]} failed"; }
    [[ -x /usr/bin/docker ]] && [[ "$DOCKER" == docker ]] && DOCKER=/usr/bin/docker
  fi
  if daemon_answers; then
    log "docker daemon: answering ($("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null))"
    return
  fi
  command -v dockerd >/dev/null || skip "no dockerd and no daemon answering"
  as_root true || skip "no daemon answering and not root: cannot start dockerd"
  # No iptables and no default bridge: this works where the kernel or the
  # sandbox refuses NAT; containers then run with --network host (the builds
  # too, for their downloads). User-defined networks (Compose) still work.
  mkdir -p "$ROOT/logs"
  log "starting dockerd (log: $ROOT/logs/dockerd.log)"
  as_root setsid dockerd --iptables=false --ip6tables=false --bridge=none \
    </dev/null >>"$ROOT/logs/dockerd.log" 2>&1 &
  disown || true
  for _ in $(seq 1 60); do
    daemon_answers && return
    sleep 1
  done
  tail -n 20 "$ROOT/logs/dockerd.log" >&2
  skip "dockerd did not answer within 60 s"
}

# ------------------------------------------------------- b. base images
have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# A minbase Debian 12 root file system, cleaned like the official images;
# debian:12-slim additionally leaves out docs, man pages and locales (as the
# official slim images do, also for packages installed later).
make_base_images() {
  if have_image debian:12 && have_image debian:12-slim; then
    log "debian:12 and debian:12-slim: present"
    return
  fi
  [[ $(id -u) -eq 0 ]] || die "making debian:12 with debootstrap needs root"
  command -v debootstrap >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >"$WORK/apt.log" 2>&1 ||
      { tail -n 20 "$WORK/apt.log" >&2; die "apt-get install debootstrap failed"; }
  }
  local rootfs="$WORK/rootfs"
  log "debootstrap --variant=minbase bookworm ($DEBIAN_MIRROR)"
  debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/tmp/*
  if ! have_image debian:12; then
    tar -C "$rootfs" -c . | "$DOCKER" import --change 'CMD ["bash"]' - debian:12 >/dev/null
    log "debian:12: imported"
  fi
  if ! have_image debian:12-slim; then
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
    find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,locale}/*
    tar -C "$rootfs" -c . | "$DOCKER" import --change 'CMD ["bash"]' - debian:12-slim >/dev/null
    log "debian:12-slim: imported"
  fi
  rm -rf "$rootfs"
}

# ------------------------------------------------------------ c. image
# A daemon without its default bridge (dockerd --bridge=none) can run build
# steps only on the host network. Docker 20.10's BuildKit then re-runs every
# RUN (no layer cache with an explicit --network); the cache mounts (pip
# wheels, ccache) still carry over. BUILD_NETWORK overrides.
build_network_args() {
  if [[ -n "${BUILD_NETWORK:-}" ]]; then printf '%s\n' --network "$BUILD_NETWORK"
  elif ! "$DOCKER" network inspect bridge >/dev/null 2>&1; then printf '%s\n' --network host; fi
}

# drop_replaced TAG OLD_ID: removes the image TAG named before a rebuild, so
# reruns do not pile up dangling images (kept while something uses it).
drop_replaced() {
  local new
  new="$(image_id "$1")"
  if [[ -n "$2" && "$2" != "$new" ]]; then "$DOCKER" rmi "$2" >/dev/null 2>&1 || true; fi
}

image_id() { "$DOCKER" image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

secret_args() {
  if [[ -s "$CA_BUNDLE" ]]; then printf '%s\n' --secret "id=ca,src=$CA_BUNDLE"; fi
}

build_image() {
  local secret=() net=() old
  mapfile -t secret < <(secret_args)
  mapfile -t net < <(build_network_args)
  old="$(image_id "$IMAGE")"
  if [[ $MODE == prebuilt ]]; then
    local f
    for f in "$SERVE" "$CLIENT" "$TRAIN" "$DEPS/libtorch/lib/libtorch_cpu.so" \
      "$DEPS/models/all-MiniLM-L6-v2/model.safetensors"; do
      [[ -e "$f" ]] || die "--prebuilt needs $f (scripts/bootstrap.sh, then a CMake build)"
    done
    # The context: a tar holding just the Dockerfile and the host build, at
    # the paths the Dockerfile's prebuilt stage copies (the repository's
    # .dockerignore, which leaves build/ and .deps/ out, does not apply).
    log "docker build --build-arg DYLORA_BINARIES=prebuilt -t $IMAGE (context: host build)"
    tar -c -h -C "$ROOT" Dockerfile \
      -C "$DEPS" libtorch/lib models/all-MiniLM-L6-v2 \
      -C "$BUILD" server/app/dylora-serve client/dylora-client trainer/dylora-train \
      --transform 's,^libtorch/,.deps/libtorch/,;s,^models/,.deps/models/,;s,^\(server\|client\|trainer\)/,build/\1/,' |
      "$DOCKER" build "${net[@]}" --progress=plain "${secret[@]}" \
        --build-arg DYLORA_BINARIES=prebuilt --target runtime -t "$IMAGE" - \
        >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; die "docker build failed"; }
  else
    log "docker build --target runtime -t $IMAGE . (full: bootstrap + CMake in the image)"
    # Progress: the step lines only (the whole log is in $WORK/build.log).
    if ! "$DOCKER" build "${net[@]}" --progress=plain "${secret[@]}" --target runtime \
      -t "$IMAGE" "$ROOT" 2>&1 | tee "$WORK/build.log" |
      { grep --line-buffered -E '^#[0-9]+ (\[|DONE|ERROR|CACHED)' >&2 || true; }; then
      tail -n 40 "$WORK/build.log" >&2
      die "docker build failed"
    fi
  fi
  drop_replaced "$IMAGE" "$old"
  log "image $IMAGE: $(image_size_mb) MB"
}

image_size_mb() { # [IMAGE]
  "$DOCKER" image inspect --format '{{.Size}}' "${1:-$IMAGE}" | awk '{ printf "%.0f", $1 / 1e6 }'
}

# ------------------------------------------------- d. adapter, container
train_adapter() {
  local data=()
  [[ -n "${DYLORA_GLUE_DIR:-}" ]] && data=(--data-dir "$DYLORA_GLUE_DIR")
  [[ -x "$TRAIN" ]] || die "no $TRAIN (build the host tree first)"
  mkdir -p "$WORK/adapters"
  "$TRAIN" --task sst2 --max-steps 4 --batch-size 8 --max-train-examples 64 \
    --max-dev-examples 16 --max-seq-len 32 --threads 1 "${data[@]}" \
    --output "$WORK/adapters/sst2" >"$WORK/train.log" 2>&1 ||
    { tail -n 20 "$WORK/train.log" >&2; die "dylora-train failed"; }
  # The container runs as uid 10001.
  chmod 755 "$WORK" "$WORK/adapters"
  chmod -R a+rX "$WORK/adapters"
  log "adapter: $(find "$WORK/adapters/sst2" -type f | wc -l) files in $WORK/adapters/sst2"
}

start_container() {
  read -r GRPC_PORT METRICS_PORT PROM_PORT <<<"$(free_ports 3)"
  CONTAINER="dylora-smoke-$$"
  # The image's HEALTHCHECK (start period, timeout, retries) with a 2 s
  # interval instead of 15 s, and pointed at this --port.
  "$DOCKER" run -d --name "$CONTAINER" --network host \
    --health-interval 2s -e "DYLORA_HEALTH_SERVER=127.0.0.1:$GRPC_PORT" \
    -v "$WORK/adapters:/var/lib/dylora/adapters:ro" \
    "$IMAGE" --host 127.0.0.1 --port "$GRPC_PORT" \
    --metrics-host 127.0.0.1 --metrics-port "$METRICS_PORT" \
    --adapter sst2=/var/lib/dylora/adapters/sst2 --threads 1 --drain-timeout-s 20 >/dev/null
  log "container $CONTAINER: gRPC 127.0.0.1:$GRPC_PORT, metrics 127.0.0.1:$METRICS_PORT"
  log "image HEALTHCHECK: $("$DOCKER" image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")"
}

# ------------------------------------------------------------ e. health
# "<n> check(s); last: exit <code>, <output>" of a container's HEALTHCHECK.
health_log() {
  "$DOCKER" inspect --format '{{json .State.Health}}' "$1" | python3 -c 'import json, sys
h = json.load(sys.stdin)
last = h["Log"][-1]
print("%d check(s); last: exit %d, %r" % (len(h["Log"]), last["ExitCode"], last["Output"].strip()))'
}

# wait_healthy CONTAINER TIMEOUT_S
wait_healthy() {
  local container="$1" deadline=$((SECONDS + $2)) status running
  while ((SECONDS < deadline)); do
    running="$("$DOCKER" inspect --format '{{.State.Running}}' "$container")"
    [[ "$running" == true ]] || die "container $container exited ($("$DOCKER" inspect --format '{{.State.ExitCode}}' "$container"))"
    status="$("$DOCKER" inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$container")"
    case "$status" in
      healthy)
        log "$container: healthy after $(health_log "$container")"
        return ;;
      unhealthy) die "$container: unhealthy" ;;
      "") die "$container: the image has no HEALTHCHECK" ;;
    esac
    sleep 1
  done
  die "$container: not healthy within $2 s (status: $status)"
}

# ----------------------------------------------------- f. client calls
client_calls() {
  local server="127.0.0.1:$GRPC_PORT" data=()
  [[ -n "${DYLORA_GLUE_DIR:-}" ]] && data=(--data-dir "$DYLORA_GLUE_DIR")
  log "dylora-client infer"
  "$CLIENT" --server "$server" infer --adapter sst2 \
    "a gripping, beautifully acted film" "a dull and lifeless mess" >&2 ||
    die "dylora-client infer failed"
  log "dylora-client sweep --task sst2 --limit 32"
  "$CLIENT" --server "$server" sweep --adapter sst2 --task sst2 --limit 32 "${data[@]}" >&2 ||
    die "dylora-client sweep failed"
}

# ------------------------------------------------------ g. Prometheus
# prom_query PORT PROMQL: the first sample's value, or empty.
prom_query() {
  curl -fsS --max-time 5 -G "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" 2>/dev/null |
    python3 -c 'import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")' 2>/dev/null || true
}

# rules_ok PORT: prints "<n ok>/<n rules>" of the alert rules loaded from
# alerts.yml, and succeeds when every one of them evaluated with health ok.
rules_ok() {
  http_get "http://127.0.0.1:$1/api/v1/rules" | python3 -c '
import json, sys, yaml
want = {r["alert"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"] if "alert" in r}
try:
    groups = json.load(sys.stdin)["data"]["groups"]
except Exception:
    groups = []
got = {r["name"]: r.get("health") for g in groups for r in g["rules"]}
ok = [n for n in want if got.get(n) == "ok"]
print(f"{len(ok)}/{len(want)}")
sys.exit(0 if len(ok) == len(want) else 1)' "$ROOT/deploy/prometheus/alerts.yml"
}

prometheus_scrape() {
  command -v prometheus >/dev/null || die "no prometheus binary (Debian package prometheus)"
  cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files:
  - $ROOT/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: dylora-serve
    static_configs:
      - targets: ["127.0.0.1:$METRICS_PORT"]
EOF
  prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
  PROM_PID=$!
  log "prometheus $(prometheus --version 2>&1 | head -n 1 | awk '{print $3}') on 127.0.0.1:$PROM_PORT, scraping 127.0.0.1:$METRICS_PORT"
  local up="" series="" requests="" rules=""
  for _ in $(seq 1 60); do
    kill -0 "$PROM_PID" 2>/dev/null || die "prometheus exited"
    up="$(prom_query "$PROM_PORT" 'up{job="dylora-serve"}')"
    series="$(prom_query "$PROM_PORT" 'count({__name__=~"dylora_.+",job="dylora-serve"})')"
    requests="$(prom_query "$PROM_PORT" 'sum(dylora_requests_total{job="dylora-serve"})')"
    rules="$(rules_ok "$PROM_PORT")" && [[ "$up" == 1 && -n "$series" && -n "$requests" ]] && {
      log "prometheus: up{job=\"dylora-serve\"} = $up, $series dylora_ series," \
        "sum(dylora_requests_total) = $requests, alert rules ok: $rules"
      local targets
      targets="$(http_get "http://127.0.0.1:$PROM_PORT/api/v1/targets" | python3 -c 'import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    print(t["labels"]["job"], t["scrapeUrl"], t["health"])')"
      log "prometheus targets: $targets"
      return
    }
    sleep 1
  done
  die "prometheus: target not up or no dylora_ series within 60 s (up=$up series=$series rules ok=$rules)"
}

# ----------------------------------------------------------- h. SIGTERM
sigterm_exit() {
  log "docker kill --signal TERM $CONTAINER"
  "$DOCKER" kill --signal TERM "$CONTAINER" >/dev/null
  local code
  code="$(timeout 60 "$DOCKER" wait "$CONTAINER")" || die "$CONTAINER did not exit within 60 s of SIGTERM"
  "$DOCKER" logs --tail 4 "$CONTAINER" 2>&1 | sed 's/^/    /' >&2
  [[ "$code" == 0 ]] || die "$CONTAINER exited $code after SIGTERM (want 0)"
  log "$CONTAINER: exit code $code after SIGTERM"
  "$DOCKER" rm -v "$CONTAINER" >/dev/null
  CONTAINER=""
}

# ------------------------------------------------------------ compose
compose_prometheus_image() {
  command -v docker-compose >/dev/null || die "no docker-compose (apt package docker-compose)"
  local net=() old
  mapfile -t net < <(build_network_args)
  old="$(image_id dylora-prometheus:local)"
  log "docker build -t dylora-prometheus:local (deploy/prometheus/local.Dockerfile)"
  "$DOCKER" build "${net[@]}" --progress=plain -t dylora-prometheus:local \
    -f "$ROOT/deploy/prometheus/local.Dockerfile" "$ROOT/deploy/prometheus" >"$WORK/prom-build.log" 2>&1 ||
    { tail -n 30 "$WORK/prom-build.log" >&2; die "building dylora-prometheus:local failed"; }
  drop_replaced dylora-prometheus:local "$old"
  log "image dylora-prometheus:local: $(image_size_mb dylora-prometheus:local) MB"
}

compose_check() {
  local p_grpc p_metrics p_prom
  read -r p_grpc p_metrics p_prom <<<"$(free_ports 3)"
  # docker-compose.yml as it is, except: no top-level `name:` (Compose 1.29
  # rejects it), host ports free ones on 127.0.0.1, bind sources absolute.
  mkdir -p "$WORK/compose"
  python3 - "$ROOT/deploy/docker-compose.yml" "$WORK/compose/docker-compose.yml" \
    "8001=$p_grpc" "8002=$p_metrics" "9090=$p_prom" <<'EOF'
import os, sys, yaml
src, dst, *maps = sys.argv[1:]
host_port = dict(m.split("=") for m in maps)
base = os.path.dirname(os.path.abspath(src))
doc = yaml.safe_load(open(src))
doc.pop("name", None)
for service in doc["services"].values():
    ports = []
    for p in service.get("ports", []):
        container = str(p).split(":")[-1]
        ports.append(f"127.0.0.1:{host_port.get(container.split('/')[0], '0')}:{container}")
    if ports:
        service["ports"] = ports
    vols = []
    for v in service.get("volumes", []):
        parts = str(v).split(":")
        if parts[0].startswith("."):
            parts[0] = os.path.normpath(os.path.join(base, parts[0]))
        vols.append(":".join(parts))
    if vols:
        service["volumes"] = vols
yaml.safe_dump(doc, open(dst, "w"), sort_keys=False)
EOF
  COMPOSE_CMD=(env "DYLORA_IMAGE=$IMAGE" docker-compose -p "dylora-smoke-$$"
    --project-directory "$ROOT/deploy" -f "$WORK/compose/docker-compose.yml"
    -f "$ROOT/deploy/docker-compose.local.yml")
  "${COMPOSE_CMD[@]}" config -q || die "docker-compose config failed"
  log "docker-compose up -d --no-build dylora-serve prometheus (grpc :$p_grpc, metrics :$p_metrics, prometheus :$p_prom)"
  if ! "${COMPOSE_CMD[@]}" up -d --no-build dylora-serve prometheus 2>&1 | sed 's/^/    /' >&2; then
    die "docker-compose up failed"
  fi
  local serve prom
  serve="$("${COMPOSE_CMD[@]}" ps -q dylora-serve)"
  prom="$("${COMPOSE_CMD[@]}" ps -q prometheus)"
  [[ -n "$serve" && -n "$prom" ]] || die "compose services not running"
  # The image's HEALTHCHECK as it is (15 s interval).
  wait_healthy "$serve" "$HEALTH_TIMEOUT_S"
  local health
  health="$("$CLIENT" --server "127.0.0.1:$p_grpc" health)" || die "health through the published port failed"
  log "dylora-client health via the published port 127.0.0.1:$p_grpc: $health"
  local up="" rules=""
  for _ in $(seq 1 90); do
    up="$(prom_query "$p_prom" 'up{job="dylora-serve"}')"
    rules="$(rules_ok "$p_prom")" && [[ "$up" == 1 ]] && {
      log "compose prometheus: up{job=\"dylora-serve\"} = $up" \
        "($(prom_query "$p_prom" 'count({__name__=~"dylora_.+",job="dylora-serve"})') dylora_ series)," \
        "alerts.yml rules with health ok: $rules"
      http_get "http://127.0.0.1:$p_prom/api/v1/targets" | python3 -c 'import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    print("[smoke] compose target:", t["labels"]["job"], t["scrapeUrl"], t["health"])' >&2
      http_get "http://127.0.0.1:$p_prom/api/v1/rules" | python3 -c 'import json, sys
for g in json.load(sys.stdin)["data"]["groups"]:
    for r in g["rules"]:
        print("[smoke] compose rule:", g["file"].rsplit("/", 1)[-1], r["name"], r["health"], r.get("state", ""))' >&2
      "${COMPOSE_CMD[@]}" down -v --remove-orphans 2>&1 | sed 's/^/    /' >&2
      COMPOSE_CMD=()
      return
    }
    sleep 2
  done
  die "compose prometheus: target not up or rules not ok within 180 s (up=$up rules ok=$rules)"
}

# ---------------------------------------------------------------- main
command -v python3 >/dev/null || die "python3 missing"
command -v curl >/dev/null || die "curl missing"
step "a. docker daemon" ensure_docker
step "b. base images" make_base_images
if ((BUILD_IMAGE)); then
  step "c. build image ($MODE)" build_image
else
  have_image "$IMAGE" || die "--no-build: no image $IMAGE"
fi
if ((SINGLE)); then
  step "d. train adapter (host)" train_adapter
  step "d. start container" start_container
  step "e. healthcheck healthy" wait_healthy "$CONTAINER" "$HEALTH_TIMEOUT_S"
  step "f. client infer + sweep" client_calls
  step "g. prometheus scrape" prometheus_scrape
  step "h. SIGTERM, exit 0" sigterm_exit
fi
if ((COMPOSE)); then
  step "compose: prometheus image" compose_prometheus_image
  step "compose: up, scrape, rules, down" compose_check
fi
log "image $IMAGE: $(image_size_mb) MB ($("$DOCKER" image inspect --format '{{.Id}}' "$IMAGE" | cut -c1-19))"
