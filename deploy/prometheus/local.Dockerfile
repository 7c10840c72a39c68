# Prometheus from Debian's package, for machines that cannot pull
# prom/prometheus (no image registry): deploy/docker-compose.local.yml uses
# it, deploy/smoke.sh --compose builds it. Debian 12 ships Prometheus 2.42
# (the compose file's prom/prometheus is 2.53); prometheus.yml and
# alerts.yml need nothing newer.
#
#   docker build --network host -t dylora-prometheus:local \
#     -f deploy/prometheus/local.Dockerfile deploy/prometheus
FROM debian:12-slim
# policy-rc.d: the package's postinst must not start a server in the build.
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d \
    && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
USER prometheus
WORKDIR /prometheus
VOLUME ["/prometheus"]
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
