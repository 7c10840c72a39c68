#!/usr/bin/env python3
"""The whole story on loopback, as a user runs it (issue 5's end-to-end test).

1. dylora-train trains a small DyLoRA adapter on SST-2 (a few steps: the
   adapter is real, tiny and fast to make);
2. dylora-serve starts with it (real MiniLM, free ports);
3. every dylora-client command runs against it and its output is checked;
4. a real Prometheus (Debian's package) scrapes the metrics endpoint and
   must report the target up with dylora metrics in it;
5. SIGTERM stops the server with exit code 0.

Usage: e2e_test.py <build dir> <model dir> <glue dir>
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, expect_code=0, timeout=600):
    print("$ " + " ".join(cmd), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    sys.stdout.write(done.stdout[-4000:])
    sys.stderr.write(done.stderr[-2000:])
    if done.returncode != expect_code:
        raise AssertionError(f"{cmd[0:2]} exited {done.returncode}, expected {expect_code}")
    return done.stdout


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def wait_until(predicate, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def prometheus_query(port, query):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)["data"]["result"]


def main():
    build, model, glue = sys.argv[1:4]
    train = os.path.join(build, "trainer", "dylora-train")
    serve = os.path.join(build, "server", "app", "dylora-serve")
    client = os.path.join(build, "client", "dylora-client")
    dev = os.path.join(glue, "SST-2", "dev.tsv")
    work = tempfile.mkdtemp(prefix="dylora-e2e-")
    server = prometheus = None
    try:
        adapter = os.path.join(work, "sst2")
        run([train, "--model", model, "--task", "sst2", "--data-dir", glue,
             "--output", adapter, "--max-steps", "6", "--batch-size", "16",
             "--max-train-examples", "200", "--max-dev-examples", "40",
             "--max-seq-len", "48", "--threads", "1"])

        port, metrics_port, prom_port = free_port(), free_port(), free_port()
        target = f"127.0.0.1:{port}"
        server = subprocess.Popen(
            [serve, "--model", model, "--host", "127.0.0.1", "--port", str(port),
             "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port),
             "--adapter", f"sst2={adapter}", "--profile", "phone=2", "--threads", "1",
             "--admin-insecure"])  # loopback only; load/unload below
        wait_until(lambda: subprocess.run([client, "health", "--server", target],
                                          capture_output=True).returncode == 0,
                   120, "dylora-serve to report SERVING")

        out = run([client, "health", "--server", target])
        check("SERVING" in out, "health output")
        out = run([client, "infer", "--server", target, "--adapter", "sst2", "--rank", "3",
                   "a gripping and moving film", "a dull mess"])
        check("rank 3" in out, "infer reports the rank used")
        out_json = run([client, "infer", "--server", target, "--adapter", "sst2",
                        "--profile", "phone", "--json", "a gripping and moving film"])
        parsed = json.loads(out_json)
        check(json.dumps(parsed).find('"rank": 2') >= 0, "infer --json has rank 2")
        out = run([client, "infer", "--server", target, "--adapter", "sst2", "--kserve",
                   "--rank", "3", "a gripping and moving film", "a dull mess"])
        check("rank 3" in out, "infer --kserve reports the rank used")
        out = run([client, "sweep", "--server", target, "--adapter", "sst2", "--task", "sst2",
                   "--data", dev, "--limit", "40", "--ranks", "1-8"])
        check("accuracy" in out and out.count("\n") >= 8, "sweep prints a rank table")
        out = run([client, "bench", "--server", target, "--adapter", "sst2",
                   "--concurrency", "2", "--requests", "20", "--rank-mix", "1-8"])
        check("p99" in out, "bench reports percentiles")
        out = run([client, "adapters", "--server", target])
        check("sst2" in out, "adapters lists sst2")
        out = run([client, "load", "--server", target, "copy", adapter])
        out = run([client, "adapters", "--server", target])
        check("copy" in out, "load added an adapter")
        run([client, "unload", "--server", target, "copy"])
        run([client, "infer", "--server", target, "--adapter", "copy", "x"], expect_code=1)
        run([client, "infer", "--server", target, "--adapter", "sst2", "--rank", "99", "x"],
            expect_code=1)

        # A real Prometheus scrapes the server.
        prometheus_bin = shutil.which("prometheus")
        check(prometheus_bin is not None, "Debian's prometheus is installed (bootstrap)")
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n"
                    "  - job_name: dylora\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{metrics_port}']\n")
        prometheus = subprocess.Popen(
            [prometheus_bin, f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(work, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def scraped():
            try:
                up = prometheus_query(prom_port, 'up{job="dylora"}')
                requests = prometheus_query(prom_port, "sum(dylora_requests_total)")
                return (up and up[0]["value"][1] == "1" and requests and
                        float(requests[0]["value"][1]) > 0)
            except OSError:
                return False
        wait_until(scraped, 60, "Prometheus to scrape dylora metrics")
        loaded = prometheus_query(prom_port, "dylora_adapters_loaded")
        check(loaded and loaded[0]["value"][1] == "1", "dylora_adapters_loaded is 1")
        print("prometheus: target up, dylora metrics scraped")

        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
        server = None
        check(code == 0, f"dylora-serve exited {code} after SIGTERM")
        run([client, "health", "--server", target, "--timeout-s", "2"], expect_code=3)
        print("e2e: OK")
    finally:
        for process in (server, prometheus):
            if process is not None:
                process.kill()
                process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
