# dylora images: dylora-serve, dylora-client and dylora-train with the real
# all-MiniLM-L6-v2 backbone. The build stage runs exactly what CI runs
# (scripts/bootstrap.sh, then CMake), so the image and the tests never build
# differently.
#
#   docker build -t dylora:latest .                          # CPU (default target: runtime)
#   docker build --build-arg DYLORA_TORCH_VARIANT=cuda \
#     --target runtime-cuda -t dylora:cuda .                 # CUDA 12.8
#   deploy/smoke.sh --prebuilt     # the runtime image from a host build (below)
#
# No `# syntax=` line: the frontend built into Docker >= 20.10 (BuildKit,
# DOCKER_BUILDKIT=1) supports RUN --mount, and a syntax line would make
# BuildKit pull a frontend image, which fails offline.
#
# Behind a TLS-intercepting proxy, pass the host's CA bundle as a build
# secret (optional; unused when absent):
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t dylora:latest .
# It is mounted only into the RUNs that download (pip, curl), never stored in
# a layer.
#
# DYLORA_BINARIES picks where runtime-base takes the binaries, LibTorch and
# the model from: `build` (default: the build stage below compiles them) or
# `prebuilt` (an existing host build: scripts/bootstrap.sh + CMake already
# run). The repository's .dockerignore leaves .deps and build out, so the
# prebuilt context is a tar of just those files:
#   tar -ch Dockerfile build/server/app/dylora-serve build/client/dylora-client \
#       build/trainer/dylora-train .deps/libtorch/lib .deps/models/all-MiniLM-L6-v2 |
#     DOCKER_BUILDKIT=1 docker build --build-arg DYLORA_BINARIES=prebuilt -t dylora:prebuilt -
# (deploy/smoke.sh --prebuilt does that: about a minute, no compiling). Both
# paths share runtime-base, so the runtime images differ only in where the
# binaries were built.
#
# The CUDA image is debian:12-slim as well: LibTorch's CUDA libraries
# (cuBLAS, cuDNN, NCCL, ...) come from the PyPI nvidia wheels that
# `DYLORA_TORCH_VARIANT=cuda scripts/bootstrap.sh` unpacks into
# .deps/libtorch/lib, and the driver (libcuda.so) is mounted at run time by
# the NVIDIA Container Toolkit (`docker run --gpus all`, or the Kubernetes
# device plugin). See deploy/README.md.

ARG DYLORA_BINARIES=build

# ---------------------------------------------------------------------------
# build: bootstrap (Debian packages, pinned LibTorch, model) + CMake.
FROM debian:12 AS build
ARG DYLORA_TORCH_VARIANT=cpu
# CUDA builds only: LibTorch's CMake package (find_package(Torch), used by
# -DDYLORA_CUDA=ON) insists on a CUDA toolkit with nvcc matching the wheel's
# CUDA 12.8; Debian 12 ships 11.8, so it comes from NVIDIA's debian12
# repository. Nothing from it is copied into the runtime image.
ARG CUDA_TOOLKIT_PACKAGES="cuda-nvcc-12-8 cuda-libraries-dev-12-8"
ENV DEBIAN_FRONTEND=noninteractive
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export CURL_CA_BUNDLE=/run/secrets/ca; fi; \
    if [ "$DYLORA_TORCH_VARIANT" = cuda ]; then \
      apt-get update -qq \
      && apt-get install -y -qq --no-install-recommends ca-certificates curl \
      && curl -fsSL -o /tmp/cuda-keyring.deb \
         https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb \
      && dpkg -i /tmp/cuda-keyring.deb && rm /tmp/cuda-keyring.deb \
      && apt-get update -qq \
      && apt-get install -y -qq --no-install-recommends $CUDA_TOOLKIT_PACKAGES \
      && rm -rf /var/lib/apt/lists/*; \
    fi
ENV PATH=/usr/local/cuda/bin:$PATH
WORKDIR /src
# Bootstrap first, from the script alone: this ~1 GB layer is rebuilt only
# when the script (its pins) changes, not on every source edit. The wheel
# downloads stay in a cache mount, out of the layer. The optional CA secret
# (see the top) is what pip trusts when it is given.
COPY scripts/bootstrap.sh scripts/bootstrap.sh
RUN --mount=type=cache,target=/src/.deps/wheels \
    --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then \
      export PIP_CERT=/run/secrets/ca SSL_CERT_FILE=/run/secrets/ca \
             REQUESTS_CA_BUNDLE=/run/secrets/ca CURL_CA_BUNDLE=/run/secrets/ca; \
    fi; \
    DYLORA_TORCH_VARIANT="$DYLORA_TORCH_VARIANT" scripts/bootstrap.sh \
    && rm -rf /var/lib/apt/lists/*
COPY . .
# DYLORA_MODEL_DIR and DYLORA_DATA_DIR bake the image's paths in as the
# binaries' defaults: --model for both, and dylora-train's GLUE data at
# /data/glue (mount it there).
RUN --mount=type=cache,target=/root/.cache/ccache \
    cuda_flag=""; \
    if [ "$DYLORA_TORCH_VARIANT" = cuda ]; then cuda_flag="-DDYLORA_CUDA=ON"; fi; \
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DDYLORA_BUILD_TESTS=OFF -DDYLORA_BUILD_BENCHMARKS=OFF \
      -DDYLORA_MODEL_DIR=/opt/dylora/models/all-MiniLM-L6-v2 -DDYLORA_DATA_DIR=/data \
      $cuda_flag \
    && cmake --build build --target dylora-serve dylora-client dylora-train \
    && mkdir -p /out/bin \
    && cp build/server/app/dylora-serve build/client/dylora-client \
          build/trainer/dylora-train /out/bin/

# ---------------------------------------------------------------------------
# prebuilt: the same three paths, taken from the build context instead of
# compiled: a host's build/ and .deps/ after scripts/bootstrap.sh + CMake
# (Debian 12, so the same runtime libraries). Used only with
# --build-arg DYLORA_BINARIES=prebuilt and a context holding those files
# (see the top); BuildKit then skips the build stage, and otherwise skips
# this one.
FROM scratch AS prebuilt
COPY build/server/app/dylora-serve build/client/dylora-client \
     build/trainer/dylora-train /out/bin/
COPY .deps/libtorch/lib/ /src/.deps/libtorch/lib/
COPY .deps/models/all-MiniLM-L6-v2/ /src/.deps/models/all-MiniLM-L6-v2/

# binaries: build or prebuilt, as DYLORA_BINARIES says.
FROM ${DYLORA_BINARIES} AS binaries

# ---------------------------------------------------------------------------
# runtime-base: Debian's runtime libraries of what the binaries link (found
# with ldd + dpkg -S on a build), LibTorch's libraries, the binaries and the
# model. The binaries' RUNPATH names the build tree, so LD_LIBRARY_PATH
# points the loader at /opt/dylora/lib instead.
FROM debian:12-slim AS runtime-base
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       libabsl20220623 libc-ares2 libcivetweb1 libfmt9 libgrpc++1.51 libgrpc29 \
       libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprotobuf32 \
       libre2-9 libspdlog1.10 libssl3 libutf8proc2 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 dylora \
    && useradd --system --uid 10001 --gid dylora --home-dir /var/lib/dylora \
       --no-create-home --shell /usr/sbin/nologin dylora \
    && mkdir -p /etc/dylora /var/lib/dylora/adapters \
    && chown -R dylora:dylora /var/lib/dylora
COPY --from=binaries /src/.deps/libtorch/lib/ /opt/dylora/lib/
COPY --from=binaries /out/bin/ /opt/dylora/bin/
COPY --from=binaries /src/.deps/models/all-MiniLM-L6-v2/ /opt/dylora/models/all-MiniLM-L6-v2/
ENV PATH=/opt/dylora/bin:$PATH \
    LD_LIBRARY_PATH=/opt/dylora/lib
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /var/lib/dylora
VOLUME ["/var/lib/dylora/adapters"]
EXPOSE 8001 8002
# grpc.health.v1 overall status: SERVING once the backbone and the preloaded
# adapters are loaded, NOT_SERVING while draining after SIGTERM. (With
# --tls-cert the check needs the client's TLS flags.) A server given another
# --port (e.g. under --network host) needs DYLORA_HEALTH_SERVER to match:
#   docker run -e DYLORA_HEALTH_SERVER=127.0.0.1:18001 ... --port 18001
ENV DYLORA_HEALTH_SERVER=127.0.0.1:8001
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD dylora-client health --server "$DYLORA_HEALTH_SERVER"
# No --config by default: CLI11 refuses a --config file that does not exist.
# Mount one and pass it, e.g. `docker run ... dylora --config /etc/dylora/dylora-serve.toml`.
ENTRYPOINT ["dylora-serve", "--model", "/opt/dylora/models/all-MiniLM-L6-v2"]
CMD []

# ---------------------------------------------------------------------------
# runtime-cuda: needs --build-arg DYLORA_TORCH_VARIANT=cuda (refused
# otherwise) and, at run time, the NVIDIA Container Toolkit for the driver.
FROM runtime-base AS runtime-cuda
RUN test -e /opt/dylora/lib/libtorch_cuda.so || { \
      echo "runtime-cuda needs --build-arg DYLORA_TORCH_VARIANT=cuda" >&2; exit 1; }
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
CMD ["--device", "cuda"]

# ---------------------------------------------------------------------------
# runtime (CPU): the last stage, so a plain `docker build .` gives it.
FROM runtime-base AS runtime
