#include "client/cli.h"

#include <algorithm>
#include <iostream>

#include "CLI/CLI.hpp"
#include "client/adapters_command.h"
#include "client/bench_command.h"
#include "client/exit_codes.h"
#include "client/export_command.h"
#include "client/health_command.h"
#include "client/infer_command.h"
#include "client/sweep_command.h"

#ifndef DYLORA_DEFAULT_DATA_DIR
#define DYLORA_DEFAULT_DATA_DIR "../shared/data/glue"
#endif

namespace dylora::client {
namespace {

constexpr char kExitCodesHelp[] =
    "Exit codes: 0 ok; 1 the server refused or failed a request (or health is "
    "not SERVING); 2 usage error; 3 server unreachable (UNAVAILABLE); 4 "
    "deadline "
    "exceeded.";

// The rank flags infer shares; at most one may be given.
struct RankFlags {
  int64_t rank = 0;
  CLI::Option* rank_option = nullptr;
  std::string profile;
  std::string policy;

  RankChoice Choice() const {
    RankChoice choice;
    if (rank_option->count() > 0) choice.rank = rank;
    choice.profile = profile;
    choice.policy = policy;
    return choice;
  }
};

}  // namespace

int RunClientCommandLine(const std::vector<std::string>& args, std::istream& in,
                         std::ostream& out, std::ostream& err) {
  CLI::App app{
      "dylora-client: talk to dylora-serve (dylora.v1 and KServe v2 over gRPC)",
      "dylora-client"};
  app.footer(kExitCodesHelp);
  app.require_subcommand(1);
  app.fallthrough();  // connection flags may follow the command too

  ConnectionOptions connection;
  app.add_option("--server", connection.server, "host:port of dylora-serve")
      ->capture_default_str();
  app.add_option("--timeout-s", connection.timeout_s,
                 "deadline of each RPC in seconds")
      ->capture_default_str();
  app.add_option("--tls-ca", connection.tls_ca_file,
                 "PEM file of root certificates; enables TLS");
  app.add_option("--token-file", connection.token_file,
                 "file holding the bearer token for admin RPCs (load, unload)");

  // infer
  InferOptions infer;
  RankFlags infer_rank;
  bool infer_kserve = false;
  CLI::App* infer_app =
      app.add_subcommand("infer",
                         "classify texts (arguments, --file, or '-' for stdin; "
                         "TAB separates a pair)");
  infer_app->add_option("texts", infer.texts,
                        "texts; '-' reads one per line from stdin");
  infer_app->add_option("--adapter", infer.adapter, "adapter name")->required();
  infer_app->add_option("--file", infer.file, "one text per line ('-': stdin)");
  infer_rank.rank_option =
      infer_app->add_option("--rank", infer_rank.rank, "explicit rank");
  infer_app->add_option("--profile", infer_rank.profile,
                        "device profile (server config)");
  infer_app->add_option("--policy", infer_rank.policy,
                        "rank policy: max, best or smallest-within-tolerance");
  infer_app->add_option(
      "--batch", infer.batch,
      "texts per request (default: all, in requests of up to 64)");
  infer_app->add_flag("--kserve", infer_kserve, "use KServe v2 ModelInfer");
  infer_app->add_flag("--json", infer.json, "print JSON");

  // sweep
  SweepOptions sweep;
  sweep.data_dir = DYLORA_DEFAULT_DATA_DIR;
  bool sweep_kserve = false, sweep_json = false, sweep_csv = false;
  CLI::App* sweep_app = app.add_subcommand(
      "sweep",
      "metric and latency of an adapter at each rank on a GLUE dev file");
  sweep_app->add_option("--adapter", sweep.adapter, "adapter name")->required();
  sweep_app
      ->add_option("--task", sweep.task,
                   "GLUE task: sst2, cola, mrpc, rte, qnli, stsb, mnli, qqp")
      ->required();
  sweep_app->add_option("--data", sweep.data_file,
                        "GLUE dev.tsv (default: <data-dir>/<TASK>/dev.tsv)");
  sweep_app->add_option("--data-dir", sweep.data_dir, "GLUE root")
      ->capture_default_str();
  sweep_app->add_option(
      "--ranks", sweep.ranks,
      "ranks, e.g. 1-8 or 2,4,8 (default: the adapter's r_min..r_max)");
  sweep_app->add_option("--limit", sweep.limit, "first N rows only");
  sweep_app->add_option("--batch", sweep.batch, "rows per request")
      ->capture_default_str();
  sweep_app->add_flag("--kserve", sweep_kserve, "use KServe v2 ModelInfer");
  auto* sweep_json_flag =
      sweep_app->add_flag("--json", sweep_json, "print JSON");
  sweep_app->add_flag("--csv", sweep_csv, "print CSV")
      ->excludes(sweep_json_flag);

  // bench
  BenchOptions bench;
  bool bench_kserve = false;
  CLI::App* bench_app = app.add_subcommand(
      "bench", "closed-loop load: throughput, latency percentiles, errors");
  bench_app->add_option("--adapter", bench.adapter, "adapter name")->required();
  bench_app
      ->add_option("--concurrency", bench.concurrency, "requests in flight")
      ->capture_default_str();
  bench_app->add_option("--requests", bench.requests, "requests in total");
  bench_app->add_option(
      "--duration-s", bench.duration_s,
      "run this long (default 10 s when --requests is not given)");
  bench_app->add_option("--rank-mix", bench.rank_mix,
                        "ranks drawn uniformly per request, e.g. 1-8 or 2,4,8 "
                        "(default: the server's policy)");
  bench_app
      ->add_option("--texts-per-request", bench.texts_per_request,
                   "texts per request")
      ->capture_default_str();
  bench_app->add_option("--file", bench.file,
                        "texts to cycle through ('-': stdin)");
  bench_app->add_flag("--kserve", bench_kserve, "use KServe v2 ModelInfer");
  bench_app->add_flag("--json", bench.json, "print JSON");

  // adapters, load, unload, health
  ListAdaptersOptions list;
  CLI::App* list_app = app.add_subcommand(
      "adapters",
      "list loaded adapters with their rank ranges and rank tables");
  list_app->add_flag("--json", list.json, "print JSON");

  LoadAdapterOptions load;
  CLI::App* load_app = app.add_subcommand(
      "load", "admin: load or replace an adapter from a server path");
  load_app->add_option("name", load.name, "adapter name")->required();
  load_app->add_option("path", load.path, "adapter directory on the server")
      ->required();
  load_app->add_option("--prewarm", load.prewarm,
                       "ranks to merge at load, e.g. 8 or 2,4,8");

  UnloadAdapterOptions unload;
  CLI::App* unload_app =
      app.add_subcommand("unload", "admin: stop serving an adapter");
  unload_app->add_option("name", unload.name, "adapter name")->required();

  ExportOptions export_options;
  RankFlags export_rank;
  CLI::App* export_app = app.add_subcommand(
      "export",
      "download an adapter cut to one rank as a plain PEFT LoRA directory");
  export_app->add_option("--adapter", export_options.adapter, "adapter name")
      ->required();
  export_rank.rank_option =
      export_app->add_option("--rank", export_rank.rank, "explicit rank");
  export_app->add_option("--profile", export_rank.profile,
                         "device profile (server config): its rank");
  export_app->add_option("--policy", export_rank.policy,
                         "rank policy: max, best or smallest-within-tolerance");
  export_app
      ->add_option("-o,--output", export_options.output_dir,
                   "directory for adapter_config.json and "
                   "adapter_model.safetensors")
      ->required();
  export_app->add_flag("--json", export_options.json, "print JSON");

  HealthOptions health;
  CLI::App* health_app = app.add_subcommand(
      "health", "grpc.health.v1 check; exit 0 only when SERVING");
  health_app->add_option("--service", health.service,
                         "a service name (default: server)");

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error, out, err);
    return code == 0 ? kExitOk : kExitUsage;
  }

  if (*infer_app) {
    infer.connection = connection;
    infer.rank = infer_rank.Choice();
    infer.protocol = infer_kserve ? Protocol::kKServe : Protocol::kDyloraV1;
    return RunInfer(infer, in, out, err);
  }
  if (*sweep_app) {
    sweep.connection = connection;
    sweep.protocol = sweep_kserve ? Protocol::kKServe : Protocol::kDyloraV1;
    sweep.format = sweep_json  ? OutputFormat::kJson
                   : sweep_csv ? OutputFormat::kCsv
                               : OutputFormat::kTable;
    return RunSweep(sweep, out, err);
  }
  if (*bench_app) {
    bench.connection = connection;
    bench.protocol = bench_kserve ? Protocol::kKServe : Protocol::kDyloraV1;
    return RunBench(bench, in, out, err);
  }
  if (*list_app) {
    list.connection = connection;
    return RunListAdapters(list, out, err);
  }
  if (*load_app) {
    load.connection = connection;
    return RunLoadAdapter(load, out, err);
  }
  if (*unload_app) {
    unload.connection = connection;
    return RunUnloadAdapter(unload, out, err);
  }
  if (*export_app) {
    export_options.connection = connection;
    export_options.rank = export_rank.Choice();
    return RunExport(export_options, out, err);
  }
  health.connection = connection;
  return RunHealth(health, out, err);
}

}  // namespace dylora::client
