#!/usr/bin/env python3
"""The one table of bench/compare.sh, from the files it wrote into its --out
directory:

  encoder_bench.json        build/bench/encoder_bench --benchmark_out (ours, in-process)
  serve_<P>_c<N>.json       dylora-client bench --json against dylora-serve
                            --precision P (fp32, int8) at concurrency N (ours, served)
  serve_<P>_metrics_<i>.txt dylora-serve /metrics scrapes around the bench runs (optional)
  serve_<P>_threads_<i>.txt CPU ticks per dylora-serve thread at the same points (optional)
  peers.json                bench/peers/peers_bench.py --out
  meta.json                 what compare.sh ran with (threads, seconds, CPU, load,
                            precisions)

In-process rows show sentences/s and the ratio to the best peer at the same
batch size. Served rows (one text per request) show the ratio to ONNX
Runtime at the same precision (ort_fp32 for fp32, ort_int8 for int8), best
in-process figure over the batch sizes, and to the best peer's best
in-process figure; their p50 latency is compared with the same-precision ORT
batch-1 p50. Writes compare.json and compare.txt next to the inputs. A
directory of an older compare.sh (serve_c<N>.json, no "precisions" in
meta.json) reads as fp32. Standard library only.
"""

import argparse
import json
import re
import sys
from pathlib import Path


def load(path):
    return json.loads(Path(path).read_text())


def prometheus(path):
    """name -> summed value over label sets (None when the file is absent)."""
    p = Path(path)
    if not p.exists():
        return None
    out = {}
    for line in p.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + v
    return out


def thread_ticks(path):
    """"tid comm" -> CPU ticks (None when the file is absent)."""
    p = Path(path)
    if not p.exists():
        return None
    out = {}
    for line in p.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            out[" ".join([parts[0]] + parts[2:3])] = int(parts[1])
    return out


def fmt(v, spec):
    if v is not None:
        return format(v, spec)
    width = re.match(r"\d*", spec).group(0)
    return "-".rjust(int(width)) if width else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="the --out directory of compare.sh")
    args = ap.parse_args()
    d = Path(args.dir)
    meta = load(d / "meta.json")
    peers = load(d / "peers.json")
    eb = load(d / "encoder_bench.json")
    sizes = meta["batch_sizes"]
    variants = meta["variants"]
    concurrencies = meta["concurrencies"]

    # ---- peers
    peer_rows = {(r["peer"], r["batch_size"]): r for r in peers["results"]}
    peer_names = []
    for r in peers["results"]:
        if r["peer"] not in peer_names:
            peer_names.append(r["peer"])
    best_peer = {}
    for (name, b), r in peer_rows.items():
        if b not in best_peer or r["sentences_per_second"] > best_peer[b][1]:
            best_peer[b] = (name, r["sentences_per_second"])
    best_overall = max(((n, b, r["sentences_per_second"]) for (n, b), r in peer_rows.items()),
                       key=lambda t: t[2])
    # Served rows: ONNX Runtime at the same precision, best in-process figure,
    # and its batch-1 p50.
    ort_best, ort1_p50 = {}, {}
    for prec in ("fp32", "int8"):
        cells = [(b, r["sentences_per_second"]) for (n, b), r in peer_rows.items()
                 if n == f"ort_{prec}"]
        if cells:
            b, sps = max(cells, key=lambda t: t[1])
            ort_best[prec] = (f"ort_{prec}@{b}", sps)
        r1 = peer_rows.get((f"ort_{prec}", 1))
        ort1_p50[prec] = r1["p50_ms"] if r1 else None

    # ---- ours, in-process
    ours = {}
    for bm in eb["benchmarks"]:
        if bm.get("run_type", "iteration") != "iteration" or bm.get("error_occurred"):
            continue
        m = re.match(r"^encoder/batch:(\d+)/([^/]+)(/|$)", bm["name"])
        if not m:
            continue
        unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[bm.get("time_unit", "ns")]
        ours[(m.group(2), int(m.group(1)))] = {
            "sentences_per_second": bm["items_per_second"],
            "mean_ms": bm["real_time"] * unit,
            "iterations": bm["iterations"],
        }

    rows = []

    def ratio(a, b):
        return a / b if (a is not None and b) else None

    def add(section, label, batch, sps, ref, mean_ms=None, p50=None, p99=None, extra=None):
        row = {"section": section, "row": label, "batch": batch,
               "sentences_per_second": sps, "reference": ref[0] if ref else None,
               "ratio_to_reference": ratio(sps, ref[1]) if ref else None,
               "mean_ms": mean_ms, "p50_ms": p50, "p99_ms": p99}
        if extra:
            row.update(extra)
        rows.append(row)

    missing = []
    for b in sizes:
        ref = best_peer.get(b)
        ref = (f"{ref[0]}@{b}", ref[1]) if ref else None
        for v in variants:
            o = ours.get((v, b))
            if o is None:
                missing.append(f"encoder_bench {v} batch {b}")
                continue
            add("in-process", f"ours {v}", str(b), o["sentences_per_second"], ref,
                mean_ms=o["mean_ms"])
        for n in peer_names:
            r = peer_rows.get((n, b))
            if r is None:
                missing.append(f"peer {n} batch {b}")
                continue
            add("in-process", n, str(b), r["sentences_per_second"], ref, mean_ms=r["mean_ms"],
                p50=r["p50_ms"], p99=r["p99_ms"])

    served_ref = (f"{best_overall[0]}@{best_overall[1]}", best_overall[2])
    legacy = "precisions" not in meta  # compare.sh before --precisions: fp32 only
    precisions = meta.get("precisions", ["fp32"])
    served_info = {}
    for prec in precisions:
        prefix = "serve" if legacy else f"serve_{prec}"
        ref = ort_best.get(prec)
        if ref is None:
            missing.append(f"peer ort_{prec} (reference of the served {prec} rows)")
        m_prev = prometheus(d / f"{prefix}_metrics_0.txt")
        t_prev = thread_ticks(d / f"{prefix}_threads_0.txt")
        for i, c in enumerate(concurrencies, start=1):
            path = d / f"{prefix}_c{c}.json"
            label = f"ours served {prec} c={c}"
            if not path.exists():
                missing.append(f"served {prec} concurrency {c}")
                continue
            s = load(path)
            lat = s["latency_seconds"]
            p50 = lat["p50"] * 1e3
            m_now = prometheus(d / f"{prefix}_metrics_{i}.txt")
            extra = {"precision": prec, "concurrency": c,
                     "best_peer_reference": served_ref[0],
                     "ratio_to_best_peer": ratio(s["texts_per_second"], served_ref[1]),
                     "p50_reference": f"ort_{prec}@1",
                     "p50_ratio_to_reference": ratio(p50, ort1_p50.get(prec)),
                     "requests": s["requests"], "failed": s["failed"]}
            peak = (peers.get("gemm_peak") or {}).get("gflops")
            if peak and peers.get("linear_flops_per_token") and peers.get("mean_tokens_per_sentence"):
                # Real tokens only: what the linears must compute, whatever
                # the padding or overheads cost on top.
                work = (s["texts_per_second"] * peers["mean_tokens_per_sentence"]
                        * peers["linear_flops_per_token"] / 1e9)
                extra["real_token_gflops"] = work
                extra["share_of_gemm_peak"] = work / peak
            if m_prev is not None and m_now is not None:
                def delta(name):
                    return m_now.get(name, 0.0) - m_prev.get(name, 0.0)
                n_batches = delta("dylora_batch_size_count")
                extra["server_batches"] = n_batches
                extra["server_mean_batch_rows"] = (delta("dylora_batch_size_sum") / n_batches
                                                   if n_batches else None)
                extra["merge_cache_hits"] = delta("dylora_merge_cache_hits_total")
                extra["merge_cache_misses"] = delta("dylora_merge_cache_misses_total")
                # Where a request's time goes (means over the cell, ms), from
                # the server's own histograms and the client's latency.
                n_req = delta("dylora_request_duration_seconds_count")
                n_queued = delta("dylora_queue_duration_seconds_count")
                n_computed = delta("dylora_compute_duration_seconds_count")
                if n_req and n_queued and n_computed:
                    server = delta("dylora_request_duration_seconds_sum") / n_req * 1e3
                    queue = delta("dylora_queue_duration_seconds_sum") / n_queued * 1e3
                    compute = delta("dylora_compute_duration_seconds_sum") / n_computed * 1e3
                    extra["breakdown_ms"] = {
                        "client_latency": lat["mean"] * 1e3,
                        "server_request": server,
                        "queue_wait": queue,
                        "batch_compute": compute,
                        # What the server spends outside the queue and the
                        # batch: decode, tokenize, validate, reply.
                        "server_other": server - queue - compute,
                        # The wire both ways, gRPC's threads and the client.
                        "grpc_and_client": lat["mean"] * 1e3 - server,
                    }
            m_prev = m_now
            t_now = thread_ticks(d / f"{prefix}_threads_{i}.txt")
            if t_prev is not None and t_now is not None:
                deltas = sorted(((t_now[k] - t_prev.get(k, 0), k) for k in t_now), reverse=True)
                top = deltas[0][0] if deltas else 0
                # A thread that computes gets a real share of the busiest one's time.
                extra["server_busy_threads"] = sum(1 for x, _ in deltas
                                                   if x >= max(2, 0.1 * top))
                extra["server_thread_ticks_top"] = [f"{k.split()[-1]}:{x}"
                                                    for x, k in deltas[:4]]
            t_prev = t_now
            served_info[(prec, c)] = extra
            add("served", label, "1/req", s["texts_per_second"], ref,
                mean_ms=lat["mean"] * 1e3, p50=p50, p99=lat["p99"] * 1e3, extra=extra)

    # ---- print
    out = []
    p = out.append
    p(f"dylora vs peers: {meta['cpu']}, nproc {meta['nproc']}, {meta['threads']} intra-op "
      f"threads everywhere, ~{meta['seconds']} s per cell; load average "
      f"{meta['loadavg_start']} at start, {meta.get('loadavg_end', '?')} at end")
    if meta.get("busy_warning"):
        p("WARNING: " + meta["busy_warning"])
    p(f"adapter {meta['adapter']} (rank {peers.get('rank')}); SST-2 dev sentences in dataset "
      f"order, batches of consecutive sentences; sent/s = sentences per second")
    p("")
    # In-process rows: ratio to the best peer at the same batch size.
    hdr = (f"{'row':<24}{'batch':>6}{'sent/s':>10}{'ratio':>8}  {'vs':<16}"
           f"{'mean ms':>9}{'p50 ms':>9}{'p99 ms':>9}")
    # Served rows: ratio to ORT at the row's precision, then to the best peer;
    # p50 ratio to ORT at the row's precision, batch 1.
    shdr = (f"{'row':<24}{'batch':>6}{'sent/s':>10}{'ratio':>8}  {'vs':<16}"
            f"{'mean ms':>9}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'ratio':>8}  {'vs best peer':<13}{'p50 ratio':>10}  {'p50 vs':<10}")
    p(hdr)
    p("-" * len(hdr))
    section = None
    for r in rows:
        if r["section"] != section:
            if section is not None:
                p("")
            section = r["section"]
            if section == "served":
                p(shdr.rstrip())
                p("-" * len(shdr.rstrip()))
        vs = r["reference"] or "-"
        if section == "served" and r["reference"]:
            vs = vs.replace("@", " best@")  # ORT's best batch, not batch 1 per se
        line = (f"{r['row']:<24}{r['batch']:>6}{fmt(r['sentences_per_second'], '10.1f')}"
                f"{fmt(r['ratio_to_reference'], '7.2f')}{'x' if r['reference'] else ' '}  "
                f"{vs:<16}"
                f"{fmt(r['mean_ms'], '9.2f')}{fmt(r['p50_ms'], '9.2f')}{fmt(r['p99_ms'], '9.2f')}")
        if section == "served":
            line += (f"{fmt(r['ratio_to_best_peer'], '7.2f')}x  {r['best_peer_reference']:<13}"
                     f"{fmt(r['p50_ratio_to_reference'], '9.2f')}"
                     f"{'x' if r['p50_ratio_to_reference'] is not None else ' '}  "
                     f"{r['p50_reference']:<10}")
        p(line.rstrip())
    p("")
    p("ratio: sentences/s over the reference named in 'vs'. In-process rows: the best peer "
      "at the same batch size. Served rows: first ONNX Runtime at the row's precision "
      "(ort_fp32 for fp32, ort_int8 for int8), its best in-process figure over the batch "
      "sizes ('best@B': reached at batch B), then the best peer's best in-process figure "
      "('vs best peer'); p50 ratio: the row's p50 over that ORT's batch-1 p50.")
    p("ours in-process = build/bench/encoder_bench: encoder forward on pre-tokenized batches "
      "(packed: padding-free; padded: to the batch's longest row; prepacked: packed, on linear weights reordered "
      "once for oneDNN, as dylora-serve runs fp32), no head; rank8/mixed use random r_max=8 factors on "
      "all six linears (the same work as the adapter), merged8 = weights merged at rank 8. "
      "mean ms = mean time per batch (Google Benchmark reports no percentiles).")
    p("peers = bench/peers/peers_bench.py: forward + head on pre-tokenized batches padded to "
      "their longest row; p50/p99 per batch.")
    p("served = dylora-serve (--prewarm-ranks r_max, --threads as above, --precision fp32 "
      "or int8: fp32 = linears on weights reordered once for oneDNN, int8 = backbone "
      "linears through fbgemm; the merged rank packed the same way when cached; one "
      "server per precision) through gRPC, dylora-client bench, closed loop, "
      "one sentence per request, rank r_max; latency per request, client on the same "
      "machine.")
    for (prec, c), e in served_info.items():
        if "server_batches" in e:
            mb = e["server_mean_batch_rows"]
            p(f"served {prec} c={c}: {e['requests']} requests, {e['failed']} failed; server ran "
              f"{e['server_batches']:.0f} batches of {fmt(mb, '.2f')} rows on average; "
              f"merged-weight cache hits {e['merge_cache_hits']:.0f}, misses "
              f"{e['merge_cache_misses']:.0f}")
        if "share_of_gemm_peak" in e:
            p(f"served {prec} c={c}: {e['real_token_gflops']:.1f} GFLOP/s of real-token linear "
              f"work = {100 * e['share_of_gemm_peak']:.0f}% of the fp32 GEMM peak measured in this "
              f"run ({peers['gemm_peak']['gflops']:.1f} GFLOP/s, torch.mm 2048^3; "
              f"{peers['mean_tokens_per_sentence']:.1f} tokens a sentence, "
              f"{peers['linear_flops_per_token'] / 1e6:.1f} MFLOP a token)")
        if "breakdown_ms" in e:
            b = e["breakdown_ms"]
            p(f"served {prec} c={c}, mean ms per request: client latency "
              f"{b['client_latency']:.2f} = gRPC + client {b['grpc_and_client']:.2f} + server "
              f"{b['server_request']:.2f} (queue wait {b['queue_wait']:.2f}, batch compute "
              f"{b['batch_compute']:.2f} per batch, decode/tokenize/reply "
              f"{b['server_other']:.2f}"
              + (")" if c == 1 else "; batches overlap requests, so the parts are approximate)"))
        if "server_busy_threads" in e:
            busy = e["server_busy_threads"]
            p(f"served {prec} c={c}: {busy} dylora-serve thread(s) accrued CPU time (busiest, "
              f"name:ticks: {', '.join(e['server_thread_ticks_top'])})"
              + (f"; NOTE: fewer than --threads {meta['threads']}, so the served rows did not "
                 f"run {meta['threads']} intra-op threads" if busy < meta["threads"] else ""))
    a = peers.get("agreement", {})
    if "max_abs_diff_ort_fp32_vs_hf_peft_eager" in a:
        acc = ", ".join(f"{k} {v:.4f}" for k, v in a["accuracy"].items())
        rec = a.get("adapter_recorded_accuracy_at_r_max")
        p(f"peer agreement on {a['sentences']} dev sentences: ort_fp32 vs hf_peft_eager max "
          f"|logit diff| {a['max_abs_diff_ort_fp32_vs_hf_peft_eager']:.3g}; ort_int8 vs "
          f"ort_fp32 argmax agreement {a['argmax_agreement_ort_int8_vs_ort_fp32']:.4f} "
          f"(int8: per-channel {peers['int8']['per_channel']}, reduce_range "
          f"{peers['int8']['reduce_range']}); accuracy {acc}"
          + (f"; adapter_config.json records {rec:.4f} at r_max" if rec is not None else ""))
    if missing:
        p("MISSING: " + "; ".join(missing))
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    (d / "compare.txt").write_text(text)
    (d / "compare.json").write_text(json.dumps(
        {"meta": meta, "rows": rows, "best_peer": {str(b): v[0] for b, v in best_peer.items()},
         "served_reference": served_ref[0],
         "served_precision_reference": {k: v[0] for k, v in ort_best.items()},
         "ort_batch1_p50_ms": ort1_p50, "ort_fp32_batch1_p50_ms": ort1_p50.get("fp32"),
         "peer_agreement": a, "missing": missing}, indent=2) + "\n")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
