#!/usr/bin/env python3
"""Checks the deployment files: deploy/ (Compose, Prometheus, Grafana,
Kubernetes, the example TOML), the Dockerfile and .dockerignore.

Every YAML, JSON and TOML file under deploy/ must parse, and the essentials
must hold: Kubernetes objects are complete and refer to each other correctly,
the probes ask gRPC health on port 8001, the GPU Deployment requests a GPU,
every metric a dashboard or alert names exists in
server/metrics/server_metrics.h, every TOML key is a dylora-serve flag
(server/app/server_options.cc), and the Dockerfile builds with
scripts/bootstrap.sh, runs as a non-root user and has a HEALTHCHECK.

  check_deploy_files.py [--root REPO]     # exit 1 and a list of problems
  check_deploy_files.py --self-test       # breaks copies of the files one way
                                          # at a time; each must be caught

Needs Python 3.11 (tomllib) and PyYAML (Debian python3-yaml, installed by
scripts/bootstrap.sh).
"""

import argparse
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

try:
    import yaml
except ImportError:
    print("check_deploy_files: PyYAML is missing; run scripts/bootstrap.sh "
          "(installs python3-yaml)", file=sys.stderr)
    sys.exit(1)

GRPC_PORT = 8001
METRICS_PORT = 8002
CONFIG_DIR = "/etc/dylora"
ADAPTERS_DIR = "/var/lib/dylora/adapters"
MODEL_DIR = "/opt/dylora/models/all-MiniLM-L6-v2"
HEALTH_SERVICES = {"", "dylora.v1.DyLoRA", "inference.GRPCInferenceService"}
BUILT_TARGETS = ("dylora-serve", "dylora-client", "dylora-train")
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}


class Checker:
    def __init__(self, root: pathlib.Path):
        self.root = root
        self.deploy = root / "deploy"
        self.errors: list[str] = []
        self.docs: dict[str, list] = {}  # deploy-relative path -> documents
        self.metrics: dict[str, dict] = {}  # family -> {type, labels}
        self.flags: set[str] = set()

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    # ------------------------------------------------------------------ load
    def load_files(self) -> None:
        if not self.deploy.is_dir():
            self.error("deploy", "directory missing")
            return
        for path in sorted(self.deploy.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(self.root).as_posix()
            try:
                text = path.read_text(encoding="utf-8")
                if path.suffix in (".yml", ".yaml"):
                    self.docs[rel] = [d for d in yaml.safe_load_all(text) if d is not None]
                elif path.suffix == ".json":
                    self.docs[rel] = [json.loads(text)]
                elif path.suffix == ".toml":
                    self.docs[rel] = [tomllib.loads(text)]
            except (yaml.YAMLError, json.JSONDecodeError, tomllib.TOMLDecodeError,
                    UnicodeDecodeError) as e:
                self.error(rel, f"does not parse: {e}")

    def doc(self, rel: str):
        """The single document of `rel`, or None (with an error) when absent."""
        docs = self.docs.get(rel)
        if not docs:
            if (self.root / rel).exists():
                return None  # a parse error was reported already
            self.error(rel, "missing")
            return None
        return docs[0]

    def load_metrics(self) -> None:
        """Metric families, types and labels from server_metrics.h's table,
        e.g. `dylora_requests_total{protocol,adapter,rank,code}  counter` and
        the shorthand `dylora_merge_cache_hits_total / _misses_total`."""
        header = self.root / "server/metrics/server_metrics.h"
        rel = "server/metrics/server_metrics.h"
        if not header.exists():
            self.error(rel, "missing")
            return
        for line in header.read_text().splitlines():
            if not line.startswith("//"):
                continue
            kind = next((k for k in ("counter", "histogram", "gauge")
                         if k in line.lower()), None)
            if kind is None:
                continue
            first = None
            for m in re.finditer(r"(?:((?:dylora|process)_\w+)|/\s*(_\w+))(?:\{([\w,]*)\})?", line):
                name, short, labels = m.group(1), m.group(2), m.group(3)
                if name is None:
                    if first is None:
                        continue
                    # `_misses_total` replaces as many trailing parts of the
                    # first name as it has.
                    parts = first.split("_")
                    n = len(short.strip("_").split("_"))
                    name = "_".join(parts[:-n]) + short
                elif first is None:
                    first = name
                self.metrics[name] = {
                    "type": kind,
                    "labels": set(labels.split(",")) if labels else set(),
                }
        if not self.metrics:
            self.error(rel, "no metric table found in the header comment")
            return
        source = self.root / "server/metrics/server_metrics.cc"
        if source.exists():
            # The header's table is the reference; it must not drift from
            # what the code registers.
            for kind, name in re.findall(r'Build(Counter|Gauge|Histogram)\(\)\s*'
                                         r'\.Name\("(\w+)"\)', source.read_text()):
                if name not in self.metrics:
                    self.error(rel, f"{name} is registered in server_metrics.cc "
                               "but missing from the header's table")
                elif self.metrics[name]["type"] != kind.lower():
                    self.error(rel, f"{name} is a {kind.lower()} in server_metrics.cc, "
                               f"a {self.metrics[name]['type']} in the header")

    def load_flags(self) -> None:
        source = self.root / "server/app/server_options.cc"
        if not source.exists():
            self.error("server/app/server_options.cc", "missing")
            return
        # add_option("--x", ...), add_flag(...), add_option_function<T>(...)
        # and the duration helper AddDurationFlag(app, "--x", ...).
        self.flags = set(re.findall(
            r'(?:add_(?:option|flag)(?:_function<[^(]*)?\(|AddDurationFlag\(\s*app,)'
            r'\s*"--([a-z0-9-]+)"', source.read_text()))
        if not self.flags:
            self.error("server/app/server_options.cc", "no flags found")

    # --------------------------------------------------------------- metrics
    def series_names(self) -> dict[str, str]:
        """Exposed series name -> family (histograms expose _bucket/_sum/_count)."""
        names = {}
        for family, info in self.metrics.items():
            if info["type"] == "histogram":
                for suffix in ("_bucket", "_sum", "_count"):
                    names[family + suffix] = family
            else:
                names[family] = family
        return names

    def check_expr(self, where: str, expr: str) -> set[str]:
        """Every dylora_ / process_ series `expr` names exists, with documented labels
        in its selectors. Returns the series named."""
        series = self.series_names()
        named = set(re.findall(r"\b(?:dylora|process)_\w+", expr))
        for name in sorted(named):
            if name not in series:
                self.error(where, f"unknown metric {name} (not in server_metrics.h)")
        for name, selector in re.findall(r"\b((?:dylora|process)_\w+)\s*\{([^}]*)\}", expr):
            if name not in series:
                continue
            allowed = self.metrics[series[name]]["labels"] | TARGET_LABELS
            if name.endswith("_bucket"):
                allowed = allowed | {"le"}
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector):
                if label not in allowed:
                    self.error(where, f"{name} has no label {label!r} "
                               f"(documented: {sorted(allowed)})")
        return named

    # -------------------------------------------------------------- toml
    def check_server_toml(self, where: str, text: str) -> dict:
        try:
            config = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            self.error(where, f"TOML does not parse: {e}")
            return {}
        for key, value in config.items():
            if key == "config" or key not in self.flags:
                self.error(where, f"unknown key {key!r}: not a dylora-serve flag")
            if isinstance(value, dict):
                self.error(where, f"{key}: tables are not dylora-serve options")
            if isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value):
                self.error(where, f"{key}: nested arrays are not supported")
        # CLI11's TOML reader reads an array only when it is on one line.
        for number, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0].strip()
            if re.match(r"^[\w-]+\s*=\s*\[", code) and not code.endswith("]"):
                self.error(f"{where}:{number}", "multi-line array (CLI11 reads "
                           "arrays on one line only)")
        for entry in as_list(config.get("profile")):
            if not re.fullmatch(r"[\w.-]+=\d+", str(entry)):
                self.error(where, f"profile {entry!r} is not name=rank")
        for entry in as_list(config.get("adapter")):
            if not re.fullmatch(r"[^=\s]+=\S+", str(entry)):
                self.error(where, f"adapter {entry!r} is not name=directory")
        return config

    def check_example_toml(self) -> None:
        rel = "deploy/dylora-serve.toml"
        path = self.root / rel
        if not path.exists():
            self.error(rel, "missing")
            return
        config = self.check_server_toml(rel, path.read_text())
        profiles = {str(p).split("=")[0] for p in as_list(config.get("profile"))}
        for name in ("phone", "edge", "datacenter"):
            if name not in profiles:
                self.error(rel, f"no {name} profile")

    # --------------------------------------------------------------- k8s
    def k8s_objects(self) -> list[tuple[str, dict]]:
        objects = []
        for rel, docs in self.docs.items():
            if not rel.startswith("deploy/k8s/"):
                continue
            for doc in docs:
                if not isinstance(doc, dict):
                    self.error(rel, "a document that is not a mapping")
                    continue
                name = (doc.get("metadata") or {}).get("name")
                for field, value in (("apiVersion", doc.get("apiVersion")),
                                     ("kind", doc.get("kind")), ("metadata.name", name)):
                    if not isinstance(value, str) or not value:
                        self.error(rel, f"object without {field}")
                objects.append((rel, doc))
        return objects

    def check_k8s(self) -> None:
        objects = self.k8s_objects()
        if not objects:
            self.error("deploy/k8s", "no Kubernetes objects")
            return
        by_kind: dict[str, list[tuple[str, dict]]] = {}
        for rel, obj in objects:
            by_kind.setdefault(obj.get("kind"), []).append((rel, obj))
        names = {(o.get("kind"), (o.get("metadata") or {}).get("name")) for _, o in objects}
        configmaps = {(o.get("metadata") or {}).get("name"): o
                      for _, o in by_kind.get("ConfigMap", [])}
        for name, cm in configmaps.items():
            for key, text in (cm.get("data") or {}).items():
                if key.endswith(".toml"):
                    self.check_server_toml(f"deploy/k8s ConfigMap {name} {key}", text)

        deployments = by_kind.get("Deployment", [])
        files = {rel for rel, _ in deployments}
        for required in ("deploy/k8s/deployment.yaml", "deploy/k8s/deployment-gpu.yaml"):
            if required not in files:
                self.error(required, "no Deployment")
        for rel, dep in deployments:
            self.check_deployment(rel, dep, configmaps, names,
                                  gpu=rel.endswith("-gpu.yaml"))

        services = by_kind.get("Service", [])
        if not services:
            self.error("deploy/k8s/service.yaml", "no Service")
        for rel, svc in services:
            self.check_service(rel, svc, deployments)

        hpas = by_kind.get("HorizontalPodAutoscaler", [])
        if not hpas:
            self.error("deploy/k8s/hpa.yaml", "no HorizontalPodAutoscaler")
        for rel, hpa in hpas:
            where = f"{rel} {hpa['metadata'].get('name')}"
            if hpa.get("apiVersion") != "autoscaling/v2":
                self.error(where, "apiVersion must be autoscaling/v2")
            spec = hpa.get("spec") or {}
            ref = spec.get("scaleTargetRef") or {}
            if (ref.get("kind"), ref.get("name")) not in names:
                self.error(where, f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} "
                           "is not defined in deploy/k8s")
            if not any((m.get("resource") or {}).get("name") == "cpu"
                       for m in spec.get("metrics") or []):
                self.error(where, "no CPU resource metric")
            if spec.get("minReplicas", 1) > spec.get("maxReplicas", 0):
                self.error(where, "minReplicas > maxReplicas")
        if "deploy/k8s/configmap.yaml" not in {rel for rel, _ in by_kind.get("ConfigMap", [])}:
            self.error("deploy/k8s/configmap.yaml", "no ConfigMap")

    def check_deployment(self, rel, dep, configmaps, names, gpu: bool) -> None:
        where = f"{rel} {dep['metadata'].get('name')}"
        spec = dep.get("spec") or {}
        template = spec.get("template") or {}
        meta = template.get("metadata") or {}
        labels = meta.get("labels") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            self.error(where, "selector.matchLabels do not match the pod labels")
        annotations = meta.get("annotations") or {}
        if annotations.get("prometheus.io/scrape") != "true" or \
                str(annotations.get("prometheus.io/port")) != str(METRICS_PORT):
            self.error(where, f"pod annotations must set prometheus.io/scrape \"true\" "
                       f"and prometheus.io/port \"{METRICS_PORT}\"")
        pod = template.get("spec") or {}
        containers = pod.get("containers") or []
        if not containers:
            self.error(where, "no containers")
            return
        c = containers[0]
        ports = {p.get("containerPort") for p in c.get("ports") or []}
        if not {GRPC_PORT, METRICS_PORT} <= ports:
            self.error(where, f"container ports must include {GRPC_PORT} and {METRICS_PORT}")
        for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = c.get(probe_name)
            if probe is None:
                if probe_name != "startupProbe":
                    self.error(where, f"no {probe_name}")
                continue
            grpc = probe.get("grpc")
            if not isinstance(grpc, dict) or grpc.get("port") != GRPC_PORT:
                self.error(where, f"{probe_name} must be a grpc probe on port {GRPC_PORT}")
            elif grpc.get("service", "") not in HEALTH_SERVICES:
                self.error(where, f"{probe_name} asks unknown health service "
                           f"{grpc.get('service')!r}")
        resources = c.get("resources") or {}
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(part) or {}):
                self.error(where, f"resources.{part} needs cpu and memory")
        gpus = (resources.get("limits") or {}).get("nvidia.com/gpu")
        args = [str(a) for a in c.get("args") or []]
        device = flag_value(args, "--device")
        if gpu:
            if not isinstance(gpus, int) or gpus < 1:
                self.error(where, "resources.limits must request nvidia.com/gpu >= 1")
            if device is None or not device.startswith("cuda"):
                self.error(where, "args must pass --device cuda")
        else:
            if gpus:
                self.error(where, "the CPU Deployment requests nvidia.com/gpu")
            if device is not None and device.startswith("cuda"):
                self.error(where, "the CPU Deployment passes --device cuda")
        security = [pod.get("securityContext") or {}, c.get("securityContext") or {}]
        if not any(s.get("runAsNonRoot") is True for s in security):
            self.error(where, "runAsNonRoot: true missing")
        # Config: --config names a key of a ConfigMap mounted at CONFIG_DIR.
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        mounts = {m.get("mountPath"): m.get("name") for m in c.get("volumeMounts") or []}
        config_path = flag_value(args, "--config")
        config_volume = volumes.get(mounts.get(CONFIG_DIR)) or {}
        cm_name = (config_volume.get("configMap") or {}).get("name")
        if cm_name is None:
            self.error(where, f"no ConfigMap volume mounted at {CONFIG_DIR}")
        elif cm_name not in configmaps:
            self.error(where, f"ConfigMap {cm_name} is not defined in deploy/k8s")
        elif config_path is None or not config_path.startswith(CONFIG_DIR + "/"):
            self.error(where, f"args must pass --config {CONFIG_DIR}/<file>")
        else:
            key = config_path[len(CONFIG_DIR) + 1:]
            data = configmaps[cm_name].get("data") or {}
            if key not in data:
                self.error(where, f"--config {config_path}: ConfigMap {cm_name} has no key {key}")
            else:
                drain = tomllib.loads(data[key]).get("drain-timeout-s", 30.0) \
                    if self.toml_ok(data[key]) else 30.0
                if pod.get("terminationGracePeriodSeconds", 30) <= drain:
                    self.error(where, "terminationGracePeriodSeconds must exceed "
                               "the config's drain-timeout-s")
        adapters = volumes.get(mounts.get(ADAPTERS_DIR))
        if adapters is None:
            self.error(where, f"no volume mounted at {ADAPTERS_DIR}")
        else:
            claim = (adapters.get("persistentVolumeClaim") or {}).get("claimName")
            if claim is not None and ("PersistentVolumeClaim", claim) not in names:
                self.error(where, f"PersistentVolumeClaim {claim} is not defined in deploy/k8s")

    @staticmethod
    def toml_ok(text: str) -> bool:
        try:
            tomllib.loads(text)
            return True
        except tomllib.TOMLDecodeError:
            return False

    def check_service(self, rel, svc, deployments) -> None:
        where = f"{rel} {svc['metadata'].get('name')}"
        spec = svc.get("spec") or {}
        ports = {p.get("port") for p in spec.get("ports") or []}
        if not {GRPC_PORT, METRICS_PORT} <= ports:
            self.error(where, f"ports must include {GRPC_PORT} (grpc) and {METRICS_PORT} (metrics)")
        selector = spec.get("selector") or {}
        matched = []
        for _, dep in deployments:
            labels = ((dep.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                matched.append(dep)
        if not matched:
            self.error(where, "selector matches no Deployment's pods")
        for dep in matched:
            containers = dep["spec"]["template"]["spec"].get("containers") or [{}]
            port_names = {p.get("name") for p in containers[0].get("ports") or []}
            for p in spec.get("ports") or []:
                target = p.get("targetPort", p.get("port"))
                if isinstance(target, str) and target not in port_names:
                    self.error(where, f"targetPort {target!r} is not a container port "
                               f"of {dep['metadata']['name']}")

    # ----------------------------------------------------------- compose
    def check_compose(self) -> dict:
        rel = "deploy/docker-compose.yml"
        compose = self.doc(rel)
        if not isinstance(compose, dict):
            return {}
        services = compose.get("services") or {}
        for name in ("dylora-serve", "prometheus", "grafana"):
            if name not in services:
                self.error(rel, f"no service {name}")
        declared_volumes = set((compose.get("volumes") or {}).keys())
        for name, service in services.items():
            for volume in service.get("volumes") or []:
                source = str(volume).split(":")[0]
                if source.startswith((".", "/")):
                    if not (self.deploy / source).exists():
                        self.error(rel, f"{name}: bind source {source} does not exist")
                elif source not in declared_volumes:
                    self.error(rel, f"{name}: volume {source} is not declared")
        serve = services.get("dylora-serve") or {}
        build = serve.get("build") or {}
        context = self.deploy / (build.get("context", ".") if isinstance(build, dict) else build)
        dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
        if not dockerfile.exists():
            self.error(rel, f"dylora-serve: build finds no Dockerfile at {dockerfile}")
        container_ports = {str(p).split(":")[-1].split("/")[0] for p in serve.get("ports") or []}
        for port in (GRPC_PORT, METRICS_PORT):
            if str(port) not in container_ports:
                self.error(rel, f"dylora-serve: port {port} is not published")
        targets = {str(v).split(":")[1] for v in serve.get("volumes") or [] if ":" in str(v)}
        command = [str(a) for a in serve.get("command") or []]
        config_path = flag_value(command, "--config")
        if config_path is None or config_path not in targets:
            self.error(rel, "dylora-serve: command must pass --config with a mounted file")
        if ADAPTERS_DIR not in targets:
            self.error(rel, f"dylora-serve: no volume at {ADAPTERS_DIR}")
        grafana = services.get("grafana") or {}
        if not str(grafana.get("image", "")).startswith("grafana/grafana"):
            self.error(rel, "grafana: image must be grafana/grafana")
        if not str((services.get("prometheus") or {}).get("image", "")).startswith("prom/prometheus"):
            self.error(rel, "prometheus: image must be prom/prometheus")
        return compose

    # -------------------------------------------------------- prometheus
    def check_prometheus(self, compose: dict) -> None:
        rel = "deploy/prometheus/prometheus.yml"
        config = self.doc(rel)
        if not isinstance(config, dict):
            return
        targets = {t for sc in config.get("scrape_configs") or []
                   for static in sc.get("static_configs") or []
                   for t in static.get("targets") or []}
        if f"dylora-serve:{METRICS_PORT}" not in targets:
            self.error(rel, f"no scrape target dylora-serve:{METRICS_PORT}")
        for rule_file in config.get("rule_files") or []:
            if not (self.deploy / "prometheus" / rule_file).exists():
                self.error(rel, f"rule file {rule_file} does not exist")
        # Compose must mount every rule file next to the config.
        mounts = {str(v).split(":")[1] for v in
                  ((compose.get("services") or {}).get("prometheus") or {}).get("volumes") or []
                  if ":" in str(v)}
        for rule_file in config.get("rule_files") or []:
            if compose and f"/etc/prometheus/{rule_file}" not in mounts:
                self.error("deploy/docker-compose.yml",
                           f"prometheus: {rule_file} is not mounted in /etc/prometheus")

        rel = "deploy/prometheus/alerts.yml"
        alerts = self.doc(rel)
        if not isinstance(alerts, dict):
            return
        exprs = []
        for group in alerts.get("groups") or []:
            for rule in group.get("rules") or []:
                name = rule.get("alert") or rule.get("record") or "?"
                expr = str(rule.get("expr", ""))
                if not expr:
                    self.error(rel, f"{name}: no expr")
                exprs.append(expr)
                self.check_expr(f"{rel} {name}", expr)
                if "alert" in rule:
                    if not (rule.get("labels") or {}).get("severity"):
                        self.error(rel, f"{name}: no severity label")
                    if not (rule.get("annotations") or {}).get("summary"):
                        self.error(rel, f"{name}: no summary annotation")
        coverage = {
            'error rate (dylora_requests_total{code!="OK"})':
                lambda e: re.search(r'dylora_requests_total\{[^}]*code\s*!=\s*"OK"', e),
            "p99 latency (dylora_request_duration_seconds_bucket)":
                lambda e: "histogram_quantile(0.99" in e.replace(" ", "")
                and "dylora_request_duration_seconds_bucket" in e,
            "queue saturation (dylora_queue_depth_rows)":
                lambda e: "dylora_queue_depth_rows" in e,
            "target down (up == 0)": lambda e: re.search(r"\bup\b.*==\s*0", e),
        }
        for what, matches in coverage.items():
            if not any(matches(e) for e in exprs):
                self.error(rel, f"no alert on {what}")

    # ----------------------------------------------------------- grafana
    def check_grafana(self, compose: dict) -> None:
        rel = "deploy/grafana/provisioning/datasources/prometheus.yml"
        config = self.doc(rel)
        uids = set()
        if isinstance(config, dict):
            for ds in config.get("datasources") or []:
                if ds.get("type") == "prometheus":
                    uids.add(ds.get("uid"))
                    if "prometheus:9090" not in str(ds.get("url", "")):
                        self.error(rel, "the Prometheus datasource must point at "
                                   "http://prometheus:9090 (the compose service)")
            if not uids or None in uids:
                self.error(rel, "no prometheus datasource with a uid")
        rel = "deploy/grafana/provisioning/dashboards/dylora.yml"
        config = self.doc(rel)
        if isinstance(config, dict):
            grafana_mounts = {
                str(v).split(":")[1]: str(v).split(":")[0]
                for v in ((compose.get("services") or {}).get("grafana") or {}).get("volumes") or []
                if ":" in str(v)}
            for provider in config.get("providers") or []:
                path = (provider.get("options") or {}).get("path")
                source = grafana_mounts.get(path)
                if compose and (source is None or
                                not (self.deploy / source / "dylora.json").exists()):
                    self.error(rel, f"provider path {path} is not a compose mount "
                               "of deploy/grafana/dashboards")
            if not config.get("providers"):
                self.error(rel, "no dashboard provider")

        rel = "deploy/grafana/dashboards/dylora.json"
        dashboard = self.doc(rel)
        if not isinstance(dashboard, dict):
            return
        panels = dashboard.get("panels") or []
        if not panels:
            self.error(rel, "no panels")
        ids = [p.get("id") for p in panels]
        if len(set(ids)) != len(ids) or None in ids:
            self.error(rel, "panel ids must be present and unique")
        named: set[str] = set()
        exprs = []
        for panel in panels:
            if panel.get("type") == "row":
                continue
            title = panel.get("title", "?")
            targets = panel.get("targets") or []
            if not targets:
                self.error(rel, f"panel {title!r} has no queries")
            for target in targets:
                expr = str(target.get("expr", ""))
                exprs.append(expr)
                found = self.check_expr(f"{rel} panel {title!r}", expr)
                if not found:
                    self.error(rel, f"panel {title!r}: query names no dylora_ metric: {expr!r}")
                named |= found
                uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
                if uids and uid not in uids:
                    self.error(rel, f"panel {title!r}: datasource uid {uid!r} is not provisioned")
        for variable in (dashboard.get("templating") or {}).get("list") or []:
            query = variable.get("query")
            query = query.get("query", "") if isinstance(query, dict) else str(query or "")
            self.check_expr(f"{rel} variable {variable.get('name')}", query)
        required = {
            "requests": "dylora_requests_total",
            "latency histogram": "dylora_request_duration_seconds_bucket",
            "batch size average": "dylora_batch_size_sum",
            "batch size count": "dylora_batch_size_count",
            "batch size quantiles": "dylora_batch_size_bucket",
            "merge-cache hits": "dylora_merge_cache_hits_total",
            "merge-cache misses": "dylora_merge_cache_misses_total",
            "queue depth": "dylora_queue_depth_rows",
            "in-flight": "dylora_inflight_requests",
            "loaded adapters": "dylora_adapters_loaded",
        }
        for what, series in required.items():
            if series not in named:
                self.error(rel, f"no panel shows {what} ({series})")
        if not any(re.search(r"by \(rank\)", e) and "dylora_requests_total" in e for e in exprs):
            self.error(rel, "no panel shows requests by rank")
        if not any(re.search(r"by \(code\)", e) and "dylora_requests_total" in e for e in exprs):
            self.error(rel, "no panel shows errors by code")
        self.check_promql(rel, [e for e in exprs if e])
        for q in ("0.5", "0.9", "0.99"):
            if not any(f"histogram_quantile({q}," in e.replace(" ", "") and
                       "dylora_request_duration_seconds_bucket" in e for e in exprs):
                self.error(rel, f"no p{q[2:].ljust(2, '0')} latency query")

    def check_promql(self, where: str, exprs: list[str]) -> None:
        """PromQL syntax of dashboard queries, through `promtool check rules`
        on recording rules made of them (Grafana's variables substituted).
        Skipped without promtool (the promtool_* tests report that)."""
        promtool = shutil.which("promtool")
        if promtool is None or not exprs:
            return
        substitutions = {"$__rate_interval": "5m", "$__interval": "1m",
                         "$job": ".*", "$instance": ".*"}
        rules = []
        for i, expr in enumerate(exprs):
            for variable, value in substitutions.items():
                expr = expr.replace(variable, value)
            rules.append({"record": f"dashboard:query_{i}", "expr": expr})
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
            f.flush()
            result = subprocess.run([promtool, "check", "rules", f.name],
                                    capture_output=True, text=True)
        if result.returncode != 0:
            self.error(where, "a query is not valid PromQL: " +
                       (result.stdout + result.stderr).strip().replace("\n", " | "))

    # -------------------------------------------------------- dockerfile
    def check_dockerfile(self) -> None:
        rel = "Dockerfile"
        path = self.root / rel
        if not path.exists():
            self.error(rel, "missing")
            return
        instructions = parse_dockerfile(path.read_text())
        stages = []  # (name, base, [(instr, args)])
        for instr, args in instructions:
            if instr == "FROM":
                words = args.split()
                name = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else None
                stages.append((name, words[0] if words else "", []))
            elif not stages:
                if instr != "ARG":
                    self.error(rel, f"{instr} before the first FROM")
            else:
                stages[-1][2].append((instr, args))
        if not stages:
            self.error(rel, "no FROM")
            return
        by_name = {s[0]: s for s in stages if s[0]}

        def ancestry(stage):
            chain = [stage]
            while chain[-1][1].lower() in by_name and len(chain) <= len(stages):
                chain.append(by_name[chain[-1][1].lower()])
            return list(reversed(chain))

        def effective(stage):
            return [i for s in ancestry(stage) for i in s[2]]

        def external_base(stage):
            return ancestry(stage)[0][1]

        all_runs = " ".join(a for s in stages for i, a in s[2] if i == "RUN")
        if "scripts/bootstrap.sh" not in all_runs:
            self.error(rel, "no RUN of scripts/bootstrap.sh")
        if "DYLORA_TORCH_VARIANT" not in all_runs:
            self.error(rel, "bootstrap does not get DYLORA_TORCH_VARIANT")
        for flag in ("-DDYLORA_BUILD_TESTS=OFF", "-DDYLORA_BUILD_BENCHMARKS=OFF", "-DDYLORA_CUDA=ON"):
            if flag not in all_runs:
                self.error(rel, f"the CMake configure lacks {flag}")
        for target in BUILT_TARGETS:
            if not re.search(rf"--target\b[^&;]*\b{target}\b", all_runs):
                self.error(rel, f"cmake --build does not build {target}")
        if not any(external_base(s) == "debian:12" for s in stages):
            self.error(rel, "no build stage FROM debian:12")
        for _, _, body in stages:
            for instr, args in body:
                m = re.search(r"--from=(\S+)", args)
                if instr == "COPY" and m and m.group(1).lower() not in by_name:
                    self.error(rel, f"COPY --from={m.group(1)}: no such stage")

        final = stages[-1]
        if final[0] != "runtime":
            self.error(rel, "the last stage (what `docker build .` gives) must be "
                       "the CPU one, named runtime")
        if "runtime-cuda" not in by_name:
            self.error(rel, "no runtime-cuda stage")
        for stage in [final] + ([by_name["runtime-cuda"]] if "runtime-cuda" in by_name else []):
            label = stage[0] or "last stage"
            if any(s[0] == "runtime-cuda" for s in ancestry(stage)) and stage[0] != "runtime-cuda":
                self.error(rel, f"{label} derives from runtime-cuda")
            if external_base(stage) != "debian:12-slim":
                self.error(rel, f"{label} is not based on debian:12-slim")
            body = effective(stage)
            users = [a.split(":")[0].strip() for i, a in body if i == "USER"]
            if not users or users[-1] in ("root", "0"):
                self.error(rel, f"{label}: no non-root USER")
            health = [a for i, a in body if i == "HEALTHCHECK"]
            if not health or "NONE" in health[-1].split():
                self.error(rel, f"{label}: no HEALTHCHECK")
            elif "dylora-client" not in health[-1] or "health" not in health[-1]:
                self.error(rel, f"{label}: HEALTHCHECK must run dylora-client health")
            exposed = {p.split("/")[0] for i, a in body if i == "EXPOSE" for p in a.split()}
            for port in (GRPC_PORT, METRICS_PORT):
                if str(port) not in exposed:
                    self.error(rel, f"{label}: port {port} not exposed")
            entry = [a for i, a in body if i == "ENTRYPOINT"]
            if not entry or "dylora-serve" not in entry[-1] or MODEL_DIR not in entry[-1]:
                self.error(rel, f"{label}: ENTRYPOINT must run dylora-serve --model {MODEL_DIR}")
            elif "--config" in entry[-1]:
                self.error(rel, f"{label}: ENTRYPOINT passes --config, which CLI11 "
                           "refuses when the file is not mounted")
            env = " ".join(a for i, a in body if i == "ENV")
            if "LD_LIBRARY_PATH=/opt/dylora/lib" not in env:
                self.error(rel, f"{label}: LD_LIBRARY_PATH must name /opt/dylora/lib")
            copies = " ".join(a for i, a in body if i == "COPY")
            if MODEL_DIR not in copies:
                self.error(rel, f"{label}: the model is not copied to {MODEL_DIR}")

        rel = ".dockerignore"
        path = self.root / rel
        patterns = set(path.read_text().split()) if path.exists() else set()
        for pattern in (".deps", "build", ".git"):
            if pattern not in patterns and "/" + pattern not in patterns:
                self.error(rel, f"does not exclude {pattern}")

    def check_bootstrap(self) -> None:
        rel = "scripts/bootstrap.sh"
        path = self.root / rel
        if not path.exists():
            self.error(rel, "missing")
            return
        m = re.search(r"APT_PACKAGES=\((.*?)\)", path.read_text(), re.S)
        packages = set(re.sub(r"#[^\n]*", "", m.group(1)).split()) if m else set()
        for package in ("python3-yaml", "prometheus"):
            if package not in packages:
                self.error(rel, f"APT_PACKAGES lacks {package} (these checks need it)")

    def run(self, quiet: bool = False) -> int:
        self.load_files()
        self.load_metrics()
        self.load_flags()
        self.check_example_toml()
        self.check_k8s()
        compose = self.check_compose()
        self.check_prometheus(compose)
        self.check_grafana(compose)
        self.check_dockerfile()
        self.check_bootstrap()
        if quiet:
            return 1 if self.errors else 0
        if self.errors:
            print(f"check_deploy_files: {len(self.errors)} problem(s):")
            for e in self.errors:
                print(f"  {e}")
            return 1
        print(f"check_deploy_files: {len(self.docs)} files under deploy/, "
              f"{len(self.metrics)} metric families, {len(self.flags)} flags: OK")
        return 0


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def flag_value(args: list[str], flag: str):
    """The value of `flag` in an argument list (`--flag v` or `--flag=v`)."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1:]
    return None


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, comment
    lines (also inside continuations) dropped."""
    instructions = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            instr, _, args = current.strip().partition(" ")
            instructions.append((instr.upper(), args.strip()))
        current = ""
    if current.strip():
        instr, _, args = current.strip().partition(" ")
        instructions.append((instr.upper(), args.strip()))
    return instructions


# ------------------------------------------------------------------ self-test
# (file, text to replace, replacement, a fragment of the expected problem)
MUTATIONS = [
    ("deploy/k8s/deployment.yaml", "service: dylora.v1.DyLoRA", "service: dylora.v1.Nope",
     "unknown health service"),
    ("deploy/k8s/deployment.yaml", "          livenessProbe:\n            grpc:\n              port: 8001",
     "          livenessProbe:\n            grpc:\n              port: 8003", "livenessProbe must be a grpc probe"),
    ("deploy/k8s/deployment-gpu.yaml", "memory: 8Gi\n              nvidia.com/gpu: 1",
     "memory: 8Gi", "nvidia.com/gpu"),
    ("deploy/k8s/deployment-gpu.yaml", '"--device", "cuda"', '"--device", "cpu"',
     "--device cuda"),
    ("deploy/k8s/configmap.yaml", "merge-cache-mb", "merge-cache-mib", "unknown key"),
    ("deploy/k8s/hpa.yaml", "  name: dylora-serve\n  labels", "  labels", "metadata.name"),
    ("deploy/k8s/service.yaml", "port: 8002", "port: 9002", "ports must include"),
    ("deploy/grafana/dashboards/dylora.json", "dylora_inflight_requests",
     "dylora_inflight_request", "unknown metric"),
    ("deploy/grafana/dashboards/dylora.json", 'code!=\\"OK\\"', 'status!=\\"OK\\"',
     "has no label 'status'"),
    ("deploy/grafana/dashboards/dylora.json", "sum by (rank) (rate(", "sum by (rank) (rate((",
     "not valid PromQL"),
    ("deploy/prometheus/alerts.yml", 'code!="OK"', 'code="OK"', "no alert on error rate"),
    ("deploy/prometheus/prometheus.yml", "scrape_configs:", "scrape_configs: [", "does not parse"),
    ("deploy/docker-compose.yml", "  grafana:\n", "  grafana2:\n", "no service grafana"),
    ("deploy/dylora-serve.toml", "\nprofile = [", "\nprofile = [\n", "multi-line array"),
    ("Dockerfile", "HEALTHCHECK", "# HEALTHCHECK", "no HEALTHCHECK"),
    ("Dockerfile", "USER 10001:10001", "USER root", "no non-root USER"),
    ("Dockerfile", "scripts/bootstrap.sh \\", "true \\", "no RUN of scripts/bootstrap.sh"),
    ("Dockerfile", '"--model", "/opt/dylora/models/all-MiniLM-L6-v2"]',
     '"--model", "/opt/dylora/models/all-MiniLM-L6-v2", "--config", "/etc/dylora/x.toml"]',
     "ENTRYPOINT passes --config"),
]

COPIED = ["deploy", "Dockerfile", ".dockerignore", "scripts/bootstrap.sh",
          "server/metrics/server_metrics.h", "server/metrics/server_metrics.cc",
          "server/app/server_options.cc"]


def self_test(root: pathlib.Path) -> int:
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        def fresh_copy() -> pathlib.Path:
            copy = pathlib.Path(tmp) / "repo"
            shutil.rmtree(copy, ignore_errors=True)
            for rel in COPIED:
                source, dest = root / rel, copy / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                if source.is_dir():
                    shutil.copytree(source, dest)
                elif source.exists():
                    shutil.copy(source, dest)
            return copy

        clean = Checker(fresh_copy())
        if clean.run(quiet=True) != 0:
            print("self-test: the unmodified files do not pass; fix them first:")
            for e in clean.errors:
                print(f"  {e}")
            return 1
        for rel, old, new, expected in MUTATIONS:
            if expected == "not valid PromQL" and shutil.which("promtool") is None:
                continue  # the PromQL check needs promtool
            copy = fresh_copy()
            path = copy / rel
            text = path.read_text()
            if old not in text:
                failures.append(f"{rel}: mutation target {old!r} not found (update MUTATIONS)")
                continue
            path.write_text(text.replace(old, new, 1))
            checker = Checker(copy)
            checker.run(quiet=True)
            if not any(expected in e for e in checker.errors):
                failures.append(f"{rel}: {old!r} -> {new!r} was not caught "
                                f"(expected {expected!r}; got {checker.errors})")
    if failures:
        print("self-test FAILED:")
        for f in failures:
            print(f"  {f}")
        return 1
    print(f"self-test: all {len(MUTATIONS)} broken variants were caught")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=pathlib.Path,
                        default=pathlib.Path(__file__).resolve().parents[2],
                        help="repository root (default: this script's)")
    parser.add_argument("--self-test", action="store_true",
                        help="check that broken copies of the files are caught")
    args = parser.parse_args()
    if args.self_test:
        return self_test(args.root)
    return Checker(args.root).run()


if __name__ == "__main__":
    sys.exit(main())
