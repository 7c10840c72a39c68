// dylora-client's commands end to end: the real server (real MiniLM) on a
// loopback port, each command's library entry point called directly, its
// text and JSON output checked.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "client/adapters_command.h"
#include "client/bench_command.h"
#include "client/cli.h"
#include "client/exit_codes.h"
#include "client/health_command.h"
#include "client/infer_command.h"
#include "client/sweep_command.h"
#include "core/adapter/adapter_io.h"
#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/server/test_server.h"
#include "tests/test_paths.h"

namespace dylora::client {
namespace {

using ::dylora::testing::TestServer;
using ::dylora::testing::TestServerOptions;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

constexpr char kToken[] = "client-test-token";

const std::vector<std::string> kTexts = {
    "a gripping, beautifully shot film",
    "the plot is thin and the jokes fall flat",
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "a masterpiece",
};

nlohmann::json ParseJson(const std::string& text) {
  nlohmann::json json =
      nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(json.is_discarded()) << text;
  return json;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

class ClientCommandsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    token_dir_ = new dylora::testing::ScopedTempDir();
    std::ofstream(token_dir_->path() + "/token") << kToken << "\n";
    serving::ServerOptions options = TestServerOptions();
    options.admin_token_file = token_dir_->path() + "/token";
    server_ = new TestServer(std::move(options));
    ASSERT_TRUE(server_->ok());
    sst_path_ = new std::string(server_->AddAdapter("sst", 11));
  }
  static void TearDownTestSuite() {
    delete token_dir_;
    delete sst_path_;
    delete server_;
  }

  static ConnectionOptions Connect() {
    ConnectionOptions connection;
    connection.server = "127.0.0.1:" + std::to_string(server_->server().port());
    return connection;
  }

  // Runs infer with `options` (texts from kTexts unless set) and returns the
  // parsed --json output.
  static nlohmann::json InferJson(InferOptions options) {
    options.connection = Connect();
    options.json = true;
    if (options.texts.empty() && options.file.empty()) options.texts = kTexts;
    std::istringstream in;
    std::ostringstream out, err;
    EXPECT_EQ(RunInfer(options, in, out, err), kExitOk) << err.str();
    return ParseJson(out.str());
  }

  static std::vector<int64_t> Labels(const nlohmann::json& json) {
    std::vector<int64_t> labels;
    for (const auto& prediction : json["predictions"]) {
      labels.push_back(prediction["label"].get<int64_t>());
    }
    return labels;
  }

  static TestServer* server_;
  static std::string* sst_path_;
  static dylora::testing::ScopedTempDir* token_dir_;
};

TestServer* ClientCommandsTest::server_ = nullptr;
std::string* ClientCommandsTest::sst_path_ = nullptr;
dylora::testing::ScopedTempDir* ClientCommandsTest::token_dir_ = nullptr;

TEST_F(ClientCommandsTest, InferPrintsAHeaderAndOneLinePerText) {
  InferOptions options;
  options.connection = Connect();
  options.adapter = "sst";
  options.texts = kTexts;
  options.rank.rank = 3;
  std::istringstream in;
  std::ostringstream out, err;
  ASSERT_EQ(RunInfer(options, in, out, err), kExitOk) << err.str();
  const std::vector<std::string> lines = Lines(out.str());
  ASSERT_EQ(lines.size(), kTexts.size() + 1) << out.str();
  EXPECT_THAT(lines[0], AllOf(StartsWith("# adapter sst v1 | rank 3 (rank) | "),
                              HasSubstr("server "), HasSubstr("queue "),
                              HasSubstr("compute "), HasSubstr("round trip"),
                              HasSubstr("dylora.v1")));
  for (size_t i = 0; i < kTexts.size(); ++i) {
    const std::vector<std::string> fields = absl::StrSplit(lines[i + 1], '\t');
    ASSERT_EQ(fields.size(), 3u) << lines[i + 1];
    EXPECT_THAT(fields[0], ::testing::AnyOf("0", "1", "2"));
    EXPECT_EQ(std::vector<std::string>(absl::StrSplit(fields[1], ' ')).size(),
              3u);
    EXPECT_EQ(fields[2], kTexts[i]);
  }
  EXPECT_THAT(err.str(), IsEmpty());
}

TEST_F(ClientCommandsTest, InferJsonParsesAndCarriesTheRankUsed) {
  InferOptions options;
  options.adapter = "sst";
  options.rank.policy = "best";
  const nlohmann::json json = InferJson(options);
  EXPECT_EQ(json["adapter"], "sst");
  EXPECT_EQ(json["protocol"], "dylora.v1");
  ASSERT_EQ(json["requests"].size(), 1u);
  EXPECT_EQ(json["requests"][0]["rank"], 6);  // the test adapter's best rank
  EXPECT_EQ(json["requests"][0]["rank_source"], "policy:best");
  EXPECT_THAT(json["requests"][0]["execution_path"].get<std::string>(),
              ::testing::AnyOf("truncated", "merged"));
  EXPECT_GT(
      json["requests"][0]["server_timings"]["total_seconds"].get<double>(), 0);
  ASSERT_EQ(json["predictions"].size(), kTexts.size());
  for (size_t i = 0; i < kTexts.size(); ++i) {
    const auto& prediction = json["predictions"][i];
    EXPECT_EQ(prediction["text"], kTexts[i]);
    ASSERT_EQ(prediction["scores"].size(), 3u);
    double sum = 0;
    for (const auto& score : prediction["scores"]) sum += score.get<double>();
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

TEST_F(ClientCommandsTest, KServeAndDyloraV1GiveTheSameLabels) {
  for (int64_t rank : {1, 4, 8}) {
    InferOptions options;
    options.adapter = "sst";
    options.rank.rank = rank;
    const nlohmann::json v1 = InferJson(options);
    options.protocol = Protocol::kKServe;
    const nlohmann::json kserve = InferJson(options);
    EXPECT_EQ(kserve["protocol"], "kserve");
    EXPECT_EQ(Labels(v1), Labels(kserve)) << "rank " << rank;
    EXPECT_EQ(kserve["requests"][0]["rank"], rank);
    EXPECT_EQ(kserve["requests"][0]["rank_source"], "rank");
    EXPECT_TRUE(kserve["requests"][0]["server_timings"].is_null());
    for (size_t i = 0; i < kTexts.size(); ++i) {
      for (size_t j = 0; j < 3; ++j) {
        EXPECT_NEAR(v1["predictions"][i]["scores"][j].get<double>(),
                    kserve["predictions"][i]["scores"][j].get<double>(), 1e-5);
      }
    }
  }
}

TEST_F(ClientCommandsTest, ProfilesPairsAndBatches) {
  dylora::testing::ScopedTempDir dir;
  const std::string path = dir.path() + "/pairs.txt";
  std::ofstream(path)
      << "the cat sat\ta cat was sitting\nit rains\tthe sun shines\n"
         "a single text\n";
  for (Protocol protocol : {Protocol::kDyloraV1, Protocol::kKServe}) {
    InferOptions options;
    options.adapter = "sst";
    options.file = path;
    options.rank.profile = "phone";
    options.batch = 2;
    options.protocol = protocol;
    const nlohmann::json json = InferJson(options);
    ASSERT_EQ(json["requests"].size(), 2u);  // 3 texts, 2 per request
    EXPECT_EQ(json["requests"][0]["texts"], 2);
    EXPECT_EQ(json["requests"][1]["texts"], 1);
    EXPECT_EQ(json["requests"][0]["rank"], 2);
    EXPECT_EQ(json["requests"][0]["rank_source"], "profile:phone");
    ASSERT_EQ(json["predictions"].size(), 3u);
    EXPECT_EQ(json["predictions"][0]["text_pair"], "a cat was sitting");
    EXPECT_FALSE(json["predictions"][2].contains("text_pair"));
  }
}

TEST_F(ClientCommandsTest, InferReadsStdin) {
  InferOptions options;
  options.connection = Connect();
  options.adapter = "sst";
  options.texts = {"-"};
  options.json = true;
  std::istringstream in("first line\nsecond line\n");
  std::ostringstream out, err;
  ASSERT_EQ(RunInfer(options, in, out, err), kExitOk) << err.str();
  const nlohmann::json json = ParseJson(out.str());
  ASSERT_EQ(json["predictions"].size(), 2u);
  EXPECT_EQ(json["predictions"][1]["text"], "second line");
}

TEST_F(ClientCommandsTest, RefusalsAndUsageErrorsHaveTheirExitCodes) {
  std::istringstream in;
  {
    InferOptions options;
    options.connection = Connect();
    options.adapter = "sst";
    options.texts = {"text"};
    options.rank.rank = 99;
    std::ostringstream out, err;
    EXPECT_EQ(RunInfer(options, in, out, err), kExitRequestFailed);
    EXPECT_THAT(err.str(),
                AllOf(StartsWith(Connect().server + " refused Classify"),
                      HasSubstr("(INVALID_ARGUMENT)")));
  }
  {
    InferOptions options;
    options.connection = Connect();
    options.adapter = "no-such-adapter";
    options.texts = {"text"};
    options.protocol = Protocol::kKServe;
    std::ostringstream out, err;
    EXPECT_EQ(RunInfer(options, in, out, err), kExitRequestFailed);
    EXPECT_THAT(err.str(), AllOf(HasSubstr("refused ModelInfer (NOT_FOUND)"),
                                 HasSubstr("no-such-adapter")));
  }
  {
    InferOptions options;
    options.connection = Connect();
    options.adapter = "sst";
    options.texts = {"text"};
    options.rank.rank = 2;
    options.rank.policy = "best";
    std::ostringstream out, err;
    EXPECT_EQ(RunInfer(options, in, out, err), kExitUsage);
    EXPECT_THAT(err.str(), HasSubstr("at most one"));
  }
  {
    std::ostringstream out, err;
    EXPECT_EQ(RunClientCommandLine({"infer", "--no-such-flag"}, in, out, err),
              kExitUsage);
  }
}

TEST_F(ClientCommandsTest, SweepPrintsATableWithAccuracyPerRank) {
  SweepOptions options;
  options.connection = Connect();
  options.adapter = "sst";
  options.task = "sst2";
  options.data_dir = dylora::testing::DataDir() + "/glue";
  options.ranks = "1,2";
  options.limit = 40;
  options.batch = 16;
  std::ostringstream out, err;
  ASSERT_EQ(RunSweep(options, out, err), kExitOk) << err.str();
  const std::vector<std::string> lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 4u) << out.str();  // title, header, ranks 1 and 2
  EXPECT_THAT(lines[0],
              AllOf(HasSubstr("40 rows"), HasSubstr("SST-2/dev.tsv")));
  EXPECT_THAT(lines[1],
              AllOf(HasSubstr("rank"), HasSubstr("accuracy"),
                    HasSubstr("offline accuracy"), HasSubstr("mean ms"),
                    HasSubstr("p99 ms"), HasSubstr("rows/s")));
  for (int rank : {1, 2}) {
    const std::vector<std::string> cells =
        absl::StrSplit(lines[rank + 1], ' ', absl::SkipEmpty());
    ASSERT_EQ(cells.size(), 6u) << lines[rank + 1];
    EXPECT_EQ(cells[0], std::to_string(rank));
    double accuracy = -1;
    ASSERT_TRUE(absl::SimpleAtod(cells[1], &accuracy)) << cells[1];
    EXPECT_GE(accuracy, 0);
    EXPECT_LE(accuracy, 1);
    // The stored rank table (test_adapters.h): 0.80 at rank 1, 0.84 at 2.
    EXPECT_EQ(cells[2], rank == 1 ? "0.8000" : "0.8400");
  }
  EXPECT_THAT(err.str(), HasSubstr("warning: adapter sst has 3 labels"));
  EXPECT_THAT(err.str(), HasSubstr("40/40 rows"));
}

TEST_F(ClientCommandsTest, SweepJsonAndCsv) {
  SweepOptions options;
  options.connection = Connect();
  options.adapter = "sst";
  options.task = "sst2";
  options.data_file = dylora::testing::DataDir() + "/glue/SST-2/dev.tsv";
  options.ranks = "2";
  options.limit = 40;
  options.format = OutputFormat::kJson;
  options.protocol = Protocol::kKServe;
  std::ostringstream out, err;
  ASSERT_EQ(RunSweep(options, out, err), kExitOk) << err.str();
  const nlohmann::json json = ParseJson(out.str());
  EXPECT_EQ(json["rows"], 40);
  EXPECT_EQ(json["primary_metric"], "accuracy");
  ASSERT_EQ(json["ranks"].size(), 1u);
  const double accuracy = json["ranks"][0]["metrics"]["accuracy"].get<double>();
  EXPECT_GE(accuracy, 0);
  EXPECT_LE(accuracy, 1);
  EXPECT_DOUBLE_EQ(json["ranks"][0]["offline"].get<double>(), 0.84);
  EXPECT_EQ(json["ranks"][0]["requests"], 2);  // 40 rows, 32 per request

  options.format = OutputFormat::kCsv;
  std::ostringstream csv, csv_err;
  ASSERT_EQ(RunSweep(options, csv, csv_err), kExitOk) << csv_err.str();
  const std::vector<std::string> lines = Lines(csv.str());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(
      lines[0],
      "rank,accuracy,offline_accuracy,requests,mean_latency_ms,p99_latency_ms,"
      "rows_per_second");
  EXPECT_THAT(lines[1], StartsWith("2,"));
}

TEST_F(ClientCommandsTest, SweepRefusesAMissingDataFile) {
  SweepOptions options;
  options.connection = Connect();
  options.adapter = "sst";
  options.task = "sst2";
  options.data_file = "/nonexistent/dev.tsv";
  std::ostringstream out, err;
  EXPECT_EQ(RunSweep(options, out, err), kExitUsage);
  EXPECT_THAT(err.str(), HasSubstr("/nonexistent/dev.tsv"));
}

TEST_F(ClientCommandsTest, BenchReportsEveryRequest) {
  for (Protocol protocol : {Protocol::kDyloraV1, Protocol::kKServe}) {
    BenchOptions options;
    options.connection = Connect();
    options.adapter = "sst";
    options.concurrency = 2;
    options.requests = 20;
    options.rank_mix = "1-8";
    options.texts_per_request = 2;
    options.protocol = protocol;
    options.json = true;
    std::istringstream in;
    std::ostringstream out, err;
    ASSERT_EQ(RunBench(options, in, out, err), kExitOk) << err.str();
    const nlohmann::json json = ParseJson(out.str());
    EXPECT_EQ(json["requests"], 20);
    EXPECT_EQ(json["succeeded"], 20);
    EXPECT_EQ(json["failed"], 0);
    EXPECT_TRUE(json["errors"].empty());
    EXPECT_EQ(json["ranks"], "1-8");
    const auto& latency = json["latency_seconds"];
    EXPECT_GT(latency["p50"].get<double>(), 0);
    EXPECT_LE(latency["p50"].get<double>(), latency["p90"].get<double>());
    EXPECT_LE(latency["p90"].get<double>(), latency["p99"].get<double>());
    EXPECT_LE(latency["p99"].get<double>(), latency["max"].get<double>());
    EXPECT_GT(json["requests_per_second"].get<double>(), 0);
  }
}

TEST_F(ClientCommandsTest, BenchTextReportCountsErrorsByCode) {
  BenchOptions options;
  options.connection = Connect();
  options.adapter = "sst";
  options.concurrency = 2;
  options.requests = 20;
  std::istringstream in;
  std::ostringstream out, err;
  ASSERT_EQ(RunBench(options, in, out, err), kExitOk) << err.str();
  EXPECT_THAT(out.str(),
              AllOf(HasSubstr("requests    20 (20 ok, 0 failed)"),
                    HasSubstr("throughput"), HasSubstr("p50"), HasSubstr("p99"),
                    HasSubstr("errors      none")));

  // Ranks beyond the adapter's r_max are refused: the probe request fails.
  options.rank_mix = "9-10";
  std::ostringstream refused_out, refused_err;
  EXPECT_EQ(RunBench(options, in, refused_out, refused_err),
            kExitRequestFailed);
  EXPECT_THAT(refused_err.str(), HasSubstr("(INVALID_ARGUMENT)"));
}

TEST_F(ClientCommandsTest, AdaptersListsTheRankTable) {
  ListAdaptersOptions options;
  options.connection = Connect();
  std::ostringstream out, err;
  ASSERT_EQ(RunListAdapters(options, out, err), kExitOk) << err.str();
  EXPECT_THAT(
      out.str(),
      AllOf(HasSubstr("sst  version 1  ranks 1-8"), HasSubstr("3 labels"),
            HasSubstr("rank table (accuracy"), HasSubstr("0.9000  <- best"),
            HasSubstr("0.8800  <- smallest-within-tolerance")));

  options.json = true;
  std::ostringstream json_out;
  ASSERT_EQ(RunListAdapters(options, json_out, err), kExitOk);
  const nlohmann::json json = ParseJson(json_out.str());
  const nlohmann::json* sst = nullptr;
  for (const auto& adapter : json["adapters"]) {
    if (adapter["name"] == "sst") sst = &adapter;
  }
  ASSERT_NE(sst, nullptr);
  EXPECT_EQ((*sst)["r_min"], 1);
  EXPECT_EQ((*sst)["r_max"], 8);
  EXPECT_EQ((*sst)["rank_table"]["best_rank"], 6);
  EXPECT_EQ((*sst)["rank_table"]["smallest_rank_within_tolerance"], 3);
  EXPECT_EQ((*sst)["rank_table"]["values"].size(), 8u);
}

TEST_F(ClientCommandsTest, LoadAndUnloadRoundTripWithTheToken) {
  LoadAdapterOptions load;
  load.connection = Connect();
  load.name = "sst-copy";
  load.path = *sst_path_;
  load.prewarm = "8";
  {
    // No token: the server refuses.
    std::ostringstream out, err;
    EXPECT_EQ(RunLoadAdapter(load, out, err), kExitRequestFailed);
    EXPECT_THAT(err.str(), HasSubstr("refused LoadAdapter (UNAUTHENTICATED)"));
  }
  load.connection.token_file = token_dir_->path() + "/token";
  {
    std::ostringstream out, err;
    ASSERT_EQ(RunLoadAdapter(load, out, err), kExitOk) << err.str();
    EXPECT_THAT(out.str(), AllOf(StartsWith("loaded sst-copy (version 1)"),
                                 HasSubstr("merged [8]")));
  }
  {
    std::ostringstream out, err;
    ASSERT_EQ(RunLoadAdapter(load, out, err), kExitOk) << err.str();
    EXPECT_THAT(out.str(), StartsWith("replaced sst-copy (version 2)"));
  }
  InferOptions infer;
  infer.adapter = "sst-copy";
  infer.texts = {"served by the copy"};
  EXPECT_EQ(InferJson(infer)["requests"][0]["adapter_version"], 2);

  UnloadAdapterOptions unload;
  unload.connection = load.connection;
  unload.name = "sst-copy";
  {
    std::ostringstream out, err;
    ASSERT_EQ(RunUnloadAdapter(unload, out, err), kExitOk) << err.str();
    EXPECT_EQ(out.str(), "unloaded sst-copy\n");
  }
  {
    std::ostringstream out, err;
    EXPECT_EQ(RunUnloadAdapter(unload, out, err), kExitRequestFailed);
    EXPECT_THAT(err.str(), HasSubstr("(NOT_FOUND)"));
  }
}

TEST_F(ClientCommandsTest, HealthIsServing) {
  HealthOptions options;
  options.connection = Connect();
  std::ostringstream out, err;
  EXPECT_EQ(RunHealth(options, out, err), kExitOk) << err.str();
  EXPECT_EQ(out.str(), "SERVING\n");
  options.service = "dylora.v1.DyLoRA";
  std::ostringstream service_out;
  EXPECT_EQ(RunHealth(options, service_out, err), kExitOk);
  EXPECT_EQ(service_out.str(), "SERVING\n");
}

TEST_F(ClientCommandsTest, TheCommandLineDrivesTheSameCommands) {
  std::istringstream in;
  std::ostringstream out, err;
  ASSERT_EQ(
      RunClientCommandLine({"infer", "--server", Connect().server, "--adapter",
                            "sst", "--rank", "2", "--json", "a fine film"},
                           in, out, err),
      kExitOk)
      << err.str();
  const nlohmann::json json = ParseJson(out.str());
  EXPECT_EQ(json["requests"][0]["rank"], 2);
  // Connection flags may also come before the command.
  std::ostringstream health_out;
  EXPECT_EQ(RunClientCommandLine({"--server", Connect().server, "health"}, in,
                                 health_out, err),
            kExitOk);
  EXPECT_EQ(health_out.str(), "SERVING\n");
}

TEST_F(ClientCommandsTest, ExportWritesTheProfilesSliceAsAPeftDirectory) {
  dylora::testing::ScopedTempDir out_dir;
  const std::string dir = out_dir.path() + "/phone";
  std::istringstream in;
  std::ostringstream out, err;
  ASSERT_EQ(
      RunClientCommandLine({"export", "--server", Connect().server, "--adapter",
                            "sst", "--profile", "phone", "-o", dir, "--json"},
                           in, out, err),
      kExitOk)
      << err.str();
  const nlohmann::json json = ParseJson(out.str());
  EXPECT_EQ(json["rank"], 2);  // the test server's phone profile
  EXPECT_EQ(json["rank_source"], "profile:phone");
  auto config = ReadFileToString(dir + "/adapter_config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(ParseJson(*config)["r"], 2);
  auto slice = ReadAdapter(dir);
  ASSERT_TRUE(slice.ok()) << slice.status();
  EXPECT_EQ((*slice)->config().r_max, 2);
  EXPECT_EQ(
      json["bytes"].get<int64_t>(),
      static_cast<int64_t>(
          std::filesystem::file_size(dir + "/adapter_config.json") +
          std::filesystem::file_size(dir + "/adapter_model.safetensors")));

  // A refusal writes nothing and exits 1; a missing -o is a usage error.
  std::ostringstream refused_out, refused_err;
  EXPECT_EQ(
      RunClientCommandLine({"export", "--server", Connect().server, "--adapter",
                            "sst", "--rank", "9", "-o", out_dir.path() + "/r9"},
                           in, refused_out, refused_err),
      kExitRequestFailed);
  EXPECT_THAT(refused_err.str(), HasSubstr("INVALID_ARGUMENT"));
  EXPECT_FALSE(std::filesystem::exists(out_dir.path() + "/r9"));
  EXPECT_EQ(RunClientCommandLine(
                {"export", "--server", Connect().server, "--adapter", "sst"},
                in, refused_out, refused_err),
            kExitUsage);
}

TEST(ClientStoppedServerTest, AStoppedServerIsUnreachable) {
  std::string address;
  {
    TestServer server;
    ASSERT_TRUE(server.ok());
    address = "127.0.0.1:" + std::to_string(server.server().port());
    server.server().Shutdown();
  }
  InferOptions options;
  options.connection.server = address;
  options.adapter = "sst";
  options.texts = {"anyone there?"};
  std::istringstream in;
  std::ostringstream out, err;
  EXPECT_EQ(RunInfer(options, in, out, err), kExitUnreachable);
  EXPECT_THAT(err.str(),
              StartsWith("cannot reach " + address + " (UNAVAILABLE): "));
  EXPECT_EQ(out.str(), "");

  HealthOptions health;
  health.connection.server = address;
  std::ostringstream health_out, health_err;
  EXPECT_EQ(RunHealth(health, health_out, health_err), kExitUnreachable);
}

}  // namespace
}  // namespace dylora::client
