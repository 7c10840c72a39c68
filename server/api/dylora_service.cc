#include "server/api/dylora_service.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/model/linear_hook.h"
#include "server/api/call_tracker.h"
#include "server/api/row_softmax.h"
#include "server/metrics/server_metrics.h"
#include "server/runtime/serving_runtime.h"

namespace dylora::serving {
namespace {

constexpr char kProtocol[] = "dylora.v1";

// The rank selector of a ClassifyRequest or an ExportAdapterRequest (the
// same oneof in both).
template <typename Request>
absl::StatusOr<RankSelector> SelectorOf(const Request& r) {
  switch (r.rank_selector_case()) {
    case Request::kRank:
      return RankSelector::Rank(r.rank());
    case Request::kProfile:
      return RankSelector::Profile(r.profile());
    case Request::kPolicy:
      switch (r.policy()) {
        case dylora::v1::RANK_POLICY_UNSPECIFIED:
          return RankSelector::Default();
        case dylora::v1::RANK_POLICY_MAX:
          return RankSelector::Policy(RankPolicy::kMax);
        case dylora::v1::RANK_POLICY_BEST:
          return RankSelector::Policy(RankPolicy::kBest);
        case dylora::v1::RANK_POLICY_SMALLEST_WITHIN_TOLERANCE:
          return RankSelector::Policy(RankPolicy::kSmallestWithinTolerance);
        default:
          return absl::InvalidArgumentError(absl::StrCat(
              "unknown rank policy ", static_cast<int>(r.policy())));
      }
    case Request::RANK_SELECTOR_NOT_SET:
      break;
  }
  return RankSelector::Default();
}

// Logits [rows, width] -> one Prediction per row: softmax scores and the
// argmax label, or the value of a one-output regression head.
void FillPredictions(const InferenceResult& result, bool regression,
                     dylora::v1::ClassifyResponse* response) {
  const int64_t width = result.width;
  const std::vector<float> scores =
      regression ? std::vector<float>() : RowSoftmax(result.values, width);
  for (size_t offset = 0; width > 0 && offset + width <= result.values.size();
       offset += width) {
    const float* logits = result.values.data() + offset;
    dylora::v1::Prediction* prediction = response->add_predictions();
    prediction->mutable_logits()->Add(logits, logits + width);
    if (regression) {
      prediction->set_value(logits[0]);
      continue;
    }
    prediction->mutable_scores()->Add(scores.begin() + offset,
                                      scores.begin() + offset + width);
    prediction->set_label(std::max_element(logits, logits + width) - logits);
  }
}

void FillAdapterInfo(const AdapterStatus& status,
                     dylora::v1::AdapterInfo* info) {
  const ServedAdapter& served = *status.adapter;
  const DyLoraAdapter& adapter = *served.adapter;
  const AdapterConfig& config = adapter.config();
  info->set_name(served.name);
  info->set_version(served.version);
  info->set_path(served.path);
  info->set_r_min(config.r_min);
  info->set_r_max(config.r_max);
  info->set_alpha(config.alpha);
  info->set_num_labels(served.head.num_labels());
  for (LinearKind kind : config.target_kinds) {
    info->add_target_modules(std::string(LinearKindName(kind)));
  }
  const RankMetrics& metrics = adapter.rank_metrics();
  if (!metrics.empty()) {
    dylora::v1::RankTable* table = info->mutable_rank_table();
    table->set_metric(metrics.metric);
    table->set_higher_is_better(metrics.higher_is_better);
    for (const auto& [rank, value] : metrics.values) {
      dylora::v1::RankValue* entry = table->add_values();
      entry->set_rank(rank);
      entry->set_value(value);
    }
    if (metrics.best_rank) table->set_best_rank(*metrics.best_rank);
    if (metrics.smallest_rank_within_tolerance) {
      table->set_smallest_rank_within_tolerance(
          *metrics.smallest_rank_within_tolerance);
    }
    table->set_tolerance(metrics.tolerance);
  }
  info->set_base_model_fingerprint(config.base_model_fingerprint);
  info->set_load_seconds(absl::ToDoubleSeconds(served.load_time));
  info->set_loaded_at_unix_millis(absl::ToUnixMillis(served.loaded_at));
  for (int64_t rank : status.merged_ranks) info->add_merged_ranks(rank);
}

dylora::v1::ExecutionPath PathOf(ExecutionPath path) {
  switch (path) {
    case ExecutionPath::kMerged:
      return dylora::v1::EXECUTION_PATH_MERGED;
    case ExecutionPath::kTruncated:
      return dylora::v1::EXECUTION_PATH_TRUNCATED;
    case ExecutionPath::kBackbone:
      break;
  }
  return dylora::v1::EXECUTION_PATH_UNSPECIFIED;
}

}  // namespace

grpc::ServerUnaryReactor* DyloraService::Classify(
    grpc::CallbackServerContext* context,
    const dylora::v1::ClassifyRequest* request,
    dylora::v1::ClassifyResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto tracker = std::make_shared<CallTracker>(metrics_, kProtocol);
  // The adapter label only once the name resolved to a served adapter.
  auto fail = [&](const absl::Status& status, bool resolved) {
    reactor->Finish(
        tracker->Complete(status, resolved ? request->adapter() : "", 0));
    return reactor;
  };
  if (request->adapter() == runtime_.backbone_name()) {
    return fail(
        absl::InvalidArgumentError(absl::StrCat(
            "\"", request->adapter(),
            "\" is the backbone; Classify needs an adapter (the backbone's "
            "embeddings are served through KServe ModelInfer)")),
        false);
  }
  absl::StatusOr<RankSelector> selector = SelectorOf(*request);
  if (!selector.ok()) return fail(selector.status(), false);
  InferenceCall call;
  call.model = request->adapter();
  call.inputs.reserve(request->inputs_size());
  for (const dylora::v1::TextInput& input : request->inputs()) {
    call.inputs.push_back(TextInput{input.text(), input.text_pair()});
  }
  call.rank = *std::move(selector);
  call.deadline = DeadlineOf(context->deadline());
  call.is_cancelled = [context] { return context->IsCancelled(); };
  absl::StatusOr<ResolvedRequest> resolved = runtime_.Resolve(std::move(call));
  if (!resolved.ok()) {
    return fail(resolved.status(),
                ServingRuntime::ResolvedModel(resolved.status()));
  }
  const absl::Time start = tracker->start();
  absl::Status submitted = runtime_.Submit(
      *std::move(resolved),
      [reactor, tracker, response, start,
       name = request->adapter()](absl::StatusOr<InferenceResult> result) {
        if (!result.ok()) {
          reactor->Finish(tracker->Complete(result.status(), name, 0));
          return;
        }
        const AdapterAtRank& ran = std::get<AdapterAtRank>(result->target);
        const ServedAdapter& served = *ran.adapter;
        response->set_adapter(served.name);
        response->set_adapter_version(served.version);
        response->set_rank(ran.rank);
        response->set_rank_source(ran.rank_source);
        response->set_regression(served.regression());
        FillPredictions(*result, served.regression(), response);
        response->set_execution_path(PathOf(result->path));
        dylora::v1::Timings* timings = response->mutable_timings();
        timings->set_queue_seconds(absl::ToDoubleSeconds(result->queue_time));
        timings->set_compute_seconds(
            absl::ToDoubleSeconds(result->compute_time));
        timings->set_batch_size(result->batch_rows);
        timings->set_total_seconds(absl::ToDoubleSeconds(absl::Now() - start));
        reactor->Finish(
            tracker->Complete(absl::OkStatus(), served.name, ran.rank));
      });
  if (!submitted.ok()) return fail(submitted, true);
  return reactor;
}

grpc::ServerUnaryReactor* DyloraService::ListAdapters(
    grpc::CallbackServerContext* context,
    const dylora::v1::ListAdaptersRequest* /*request*/,
    dylora::v1::ListAdaptersResponse* response) {
  CallTracker tracker(metrics_, kProtocol);
  for (const AdapterStatus& status : runtime_.ListAdapters()) {
    FillAdapterInfo(status, response->add_adapters());
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(tracker.Complete(absl::OkStatus(), "", 0));
  return reactor;
}

grpc::ServerUnaryReactor* DyloraService::GetAdapter(
    grpc::CallbackServerContext* context,
    const dylora::v1::GetAdapterRequest* request,
    dylora::v1::AdapterInfo* response) {
  CallTracker tracker(metrics_, kProtocol);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<AdapterStatus> served = runtime_.GetAdapter(request->name());
  if (served.ok()) FillAdapterInfo(*served, response);
  reactor->Finish(
      tracker.Complete(served.status(), served.ok() ? request->name() : "", 0));
  return reactor;
}

grpc::ServerUnaryReactor* DyloraService::LoadAdapter(
    grpc::CallbackServerContext* context,
    const dylora::v1::LoadAdapterRequest* request,
    dylora::v1::LoadAdapterResponse* response) {
  CallTracker tracker(metrics_, kProtocol);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = auth_.Check(*context);
  if (status.ok()) {
    const std::vector<int64_t> prewarm(request->prewarm_ranks().begin(),
                                       request->prewarm_ranks().end());
    absl::StatusOr<LoadAdapterResult> loaded =
        runtime_.LoadAdapter(request->name(), request->path(), prewarm);
    status = loaded.status();
    if (loaded.ok()) {
      FillAdapterInfo(loaded->loaded, response->mutable_adapter());
      response->set_replaced(loaded->replaced);
    }
  }
  reactor->Finish(
      tracker.Complete(status, status.ok() ? request->name() : "", 0));
  return reactor;
}

grpc::ServerUnaryReactor* DyloraService::UnloadAdapter(
    grpc::CallbackServerContext* context,
    const dylora::v1::UnloadAdapterRequest* request,
    dylora::v1::UnloadAdapterResponse* /*response*/) {
  CallTracker tracker(metrics_, kProtocol);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = auth_.Check(*context);
  if (status.ok()) status = runtime_.UnloadAdapter(request->name());
  reactor->Finish(tracker.Complete(status, "", 0));
  return reactor;
}

grpc::ServerUnaryReactor* DyloraService::ExportAdapter(
    grpc::CallbackServerContext* context,
    const dylora::v1::ExportAdapterRequest* request,
    dylora::v1::ExportAdapterResponse* response) {
  CallTracker tracker(metrics_, kProtocol);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<RankSelector> selector = SelectorOf(*request);
  absl::StatusOr<ExportedAdapter> exported =
      selector.ok() ? runtime_.ExportAdapter(request->name(), *selector)
                    : absl::StatusOr<ExportedAdapter>(selector.status());
  if (exported.ok()) {
    response->set_adapter(exported->adapter->name);
    response->set_adapter_version(exported->adapter->version);
    response->set_rank(exported->rank.rank);
    response->set_rank_source(exported->rank.source);
    for (auto& [name, contents] : exported->files) {
      dylora::v1::AdapterFile* file = response->add_files();
      file->set_name(name);
      file->set_contents(std::move(contents));
    }
  }
  // The adapter label only for an export that happened (a bad name must
  // not mint a metrics series).
  reactor->Finish(tracker.Complete(exported.status(),
                                   exported.ok() ? request->name() : "",
                                   exported.ok() ? exported->rank.rank : 0));
  return reactor;
}

}  // namespace dylora::serving
