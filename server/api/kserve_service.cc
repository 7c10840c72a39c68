#include "server/api/kserve_service.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/kserve/kserve_tensors.h"
#include "proto/wire_names.h"
#include "server/api/call_tracker.h"
#include "server/api/row_softmax.h"
#include "server/runtime/serving_runtime.h"

namespace dylora::serving {
namespace {

constexpr char kProtocol[] = "kserve";
constexpr char kServerName[] = "dylora-serve";
constexpr char kServerVersion[] = "0.1.0";
constexpr char kPlatform[] = "dylora_libtorch";
using ::dylora::kserve::DecodeRawBytesTensor;
using ::dylora::kserve::EncodeRawFp32;
using ::dylora::wire::kEmbeddingOutput;
using ::dylora::wire::kLogitsOutput;
using ::dylora::wire::kProbabilitiesOutput;
using ::dylora::wire::kTextInput;
using ::dylora::wire::kTextPairInput;
using InferInput = inference::ModelInferRequest::InferInputTensor;
using Parameters =
    google::protobuf::Map<std::string, inference::InferParameter>;

// KServe's model_version: empty (any), else a decimal version; anything
// else names no version of the model (NOT_FOUND, as Triton answers).
absl::StatusOr<std::optional<int64_t>> VersionOf(const std::string& model,
                                                 const std::string& version) {
  if (version.empty()) return std::nullopt;
  int64_t number = 0;
  if (!absl::SimpleAtoi(version, &number)) {
    return absl::NotFoundError(
        absl::StrCat("model \"", model, "\" has no version ", version));
  }
  return number;
}

absl::StatusOr<ServedModel> FindModel(const ServingRuntime& runtime,
                                      const std::string& name,
                                      const std::string& version) {
  absl::StatusOr<std::optional<int64_t>> number = VersionOf(name, version);
  if (!number.ok()) return number.status();
  return runtime.FindModel(name, *number);
}

int64_t VersionOf(const ServedModel& model) {
  const auto* adapter =
      std::get_if<std::shared_ptr<const ServedAdapter>>(&model);
  return adapter != nullptr ? (*adapter)->version : kBackboneVersion;
}

// The number of elements of a [N] or [N, 1] BYTES tensor.
absl::StatusOr<int64_t> TextCount(const InferInput& input) {
  if (input.datatype() != "BYTES") {
    return absl::InvalidArgumentError(absl::StrCat(
        "input ", input.name(), " must be BYTES, not ", input.datatype()));
  }
  const auto& shape = input.shape();
  if (shape.empty() || shape.size() > 2 ||
      (shape.size() == 2 && shape[1] != 1) || shape[0] < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("input ", input.name(), " must have shape [N] or [N, 1]"));
  }
  return shape[0];
}

// Texts of input `index`, from raw_input_contents when the request uses them.
absl::StatusOr<std::vector<std::string>> TextsOf(
    const inference::ModelInferRequest& request, int index, int64_t limit) {
  const InferInput& input = request.inputs(index);
  absl::StatusOr<int64_t> count = TextCount(input);
  if (!count.ok()) return count.status();
  if (*count > limit) {
    return absl::InvalidArgumentError(
        absl::StrCat("input ", input.name(), " holds ", *count,
                     " texts; the limit is ", limit));
  }
  // Triton's shared-memory extension puts the data elsewhere; refused,
  // never read as an empty tensor.
  if (input.parameters().contains("shared_memory_region")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input ", input.name(),
        " names a shared_memory_region; shared memory is not supported: send "
        "the data in raw_input_contents or contents"));
  }
  // KServe v2: an input's data comes from exactly one place, and a BYTES
  // input's contents can only be bytes_contents.
  const inference::InferTensorContents& typed = input.contents();
  const std::pair<const char*, int> other_contents[] = {
      {"bool_contents", typed.bool_contents_size()},
      {"int_contents", typed.int_contents_size()},
      {"int64_contents", typed.int64_contents_size()},
      {"uint_contents", typed.uint_contents_size()},
      {"uint64_contents", typed.uint64_contents_size()},
      {"fp32_contents", typed.fp32_contents_size()},
      {"fp64_contents", typed.fp64_contents_size()}};
  for (const auto& [field, size] : other_contents) {
    if (size > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input ", input.name(),
                       " is BYTES but its contents "
                       "hold ",
                       field, "; BYTES data goes in bytes_contents"));
    }
  }
  if (!request.raw_input_contents().empty()) {
    if (typed.bytes_contents_size() > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input ", input.name(),
                       " has contents while the request also "
                       "carries raw_input_contents; use one or the other"));
    }
    if (request.raw_input_contents_size() != request.inputs_size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "raw_input_contents has ", request.raw_input_contents_size(),
          " entries for ", request.inputs_size(), " inputs"));
    }
    return DecodeRawBytesTensor(request.raw_input_contents(index), *count,
                                input.name());
  }
  const auto& contents = input.contents().bytes_contents();
  if (contents.size() != *count) {
    return absl::InvalidArgumentError(
        absl::StrCat("input ", input.name(), ": shape declares ", *count,
                     " elements but contents hold ", contents.size()));
  }
  return std::vector<std::string>(contents.begin(), contents.end());
}

// The rank selector from the request parameters rank / profile / policy.
absl::StatusOr<RankSelector> SelectorOf(const Parameters& parameters) {
  std::optional<RankSelector> selector;
  for (const auto& [name, value] : parameters) {
    std::optional<RankSelector> next;
    if (name == wire::kRankParameter) {
      if (value.parameter_choice_case() ==
          inference::InferParameter::kInt64Param) {
        next = RankSelector::Rank(value.int64_param());
      } else if (value.parameter_choice_case() ==
                 inference::InferParameter::kUint64Param) {
        next = RankSelector::Rank(static_cast<int64_t>(
            std::min<uint64_t>(value.uint64_param(), INT64_MAX)));
      } else {
        return absl::InvalidArgumentError("parameter rank must be an int64");
      }
    } else if (name == wire::kProfileParameter ||
               name == wire::kPolicyParameter) {
      if (value.parameter_choice_case() !=
          inference::InferParameter::kStringParam) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter ", name, " must be a string"));
      }
      if (name == wire::kProfileParameter) {
        next = RankSelector::Profile(value.string_param());
      } else {
        absl::StatusOr<RankPolicy> policy =
            ParseRankPolicy(value.string_param());
        if (!policy.ok()) return policy.status();
        next = RankSelector::Policy(*policy);
      }
    } else {
      continue;  // other parameters (e.g. tritonclient's) are not ours
    }
    if (selector.has_value()) {
      return absl::InvalidArgumentError(
          "give at most one of the parameters rank, profile and policy");
    }
    selector = next;
  }
  return selector.value_or(RankSelector::Default());
}

void AddOutput(const char* name, const std::vector<float>& values, int64_t rows,
               int64_t width, inference::ModelInferResponse* response) {
  auto* output = response->add_outputs();
  output->set_name(name);
  output->set_datatype("FP32");
  output->add_shape(rows);
  output->add_shape(width);
  response->add_raw_output_contents(
      EncodeRawFp32(values.data(), values.size()));
}

void SetParameter(Parameters* parameters, const char* name, int64_t value) {
  (*parameters)[name].set_int64_param(value);
}
void SetParameter(Parameters* parameters, const char* name,
                  const std::string& value) {
  (*parameters)[name].set_string_param(value);
}

}  // namespace

grpc::ServerUnaryReactor* KServeService::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  CallTracker tracker(metrics_, kProtocol);
  response->set_live(true);
  auto* reactor = context->DefaultReactor();
  reactor->Finish(tracker.Complete(absl::OkStatus(), "", 0));
  return reactor;
}

grpc::ServerUnaryReactor* KServeService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  CallTracker tracker(metrics_, kProtocol);
  response->set_ready(runtime_.accepting());
  auto* reactor = context->DefaultReactor();
  reactor->Finish(tracker.Complete(absl::OkStatus(), "", 0));
  return reactor;
}

grpc::ServerUnaryReactor* KServeService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  CallTracker tracker(metrics_, kProtocol);
  absl::StatusOr<ServedModel> model =
      FindModel(runtime_, request->name(), request->version());
  // Triton answers ready=false (not an error) for a model it does not serve.
  response->set_ready(model.ok() && runtime_.accepting());
  auto* reactor = context->DefaultReactor();
  reactor->Finish(
      tracker.Complete(absl::OkStatus(), model.ok() ? request->name() : "", 0));
  return reactor;
}

grpc::ServerUnaryReactor* KServeService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  CallTracker tracker(metrics_, kProtocol);
  response->set_name(kServerName);
  response->set_version(kServerVersion);
  auto* reactor = context->DefaultReactor();
  reactor->Finish(tracker.Complete(absl::OkStatus(), "", 0));
  return reactor;
}

grpc::ServerUnaryReactor* KServeService::ModelMetadata(
    grpc::CallbackServerContext* context,
    const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  CallTracker tracker(metrics_, kProtocol);
  auto* reactor = context->DefaultReactor();
  absl::StatusOr<ServedModel> model =
      FindModel(runtime_, request->name(), request->version());
  if (!model.ok()) {
    reactor->Finish(tracker.Complete(model.status(), "", 0));
    return reactor;
  }
  response->set_name(request->name());
  response->add_versions(std::to_string(VersionOf(*model)));
  response->set_platform(kPlatform);
  for (const char* name : {kTextInput, kTextPairInput}) {
    auto* input = response->add_inputs();
    input->set_name(name);
    input->set_datatype("BYTES");
    input->add_shape(-1);
  }
  auto add_output = [response](const char* name, int64_t width) {
    auto* output = response->add_outputs();
    output->set_name(name);
    output->set_datatype("FP32");
    output->add_shape(-1);
    output->add_shape(width);
  };
  if (const auto* adapter =
          std::get_if<std::shared_ptr<const ServedAdapter>>(&*model)) {
    const int64_t labels = (*adapter)->head.num_labels();
    add_output(kLogitsOutput, labels);
    if (!(*adapter)->regression()) add_output(kProbabilitiesOutput, labels);
  } else {
    add_output(kEmbeddingOutput, runtime_.embedding_width());
  }
  reactor->Finish(tracker.Complete(absl::OkStatus(), request->name(), 0));
  return reactor;
}

grpc::ServerUnaryReactor* KServeService::ModelInfer(
    grpc::CallbackServerContext* context,
    const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  auto* reactor = context->DefaultReactor();
  auto tracker = std::make_shared<CallTracker>(metrics_, kProtocol);
  auto finish = [reactor, tracker](const absl::Status& status,
                                   const std::string& label, int64_t rank) {
    reactor->Finish(tracker->Complete(status, label, rank));
  };
  const std::string& name = request->model_name();
  // The model label only once the name resolved to a served model.
  auto fail = [&](const absl::Status& status, bool resolved = false) {
    finish(status, resolved ? name : "", 0);
    return reactor;
  };

  // Inputs: TEXT, optionally TEXT_PAIR of the same length.
  int text_index = -1, pair_index = -1;
  for (int i = 0; i < request->inputs_size(); ++i) {
    const std::string& input_name = request->inputs(i).name();
    int* slot = input_name == kTextInput       ? &text_index
                : input_name == kTextPairInput ? &pair_index
                                               : nullptr;
    if (slot == nullptr) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("unexpected input \"", input_name, "\"; inputs are ",
                       kTextInput, " and ", kTextPairInput)));
    }
    if (*slot >= 0) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("input ", input_name, " given twice")));
    }
    *slot = i;
  }
  if (text_index < 0) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("input ", kTextInput, " is required")));
  }
  const int64_t limit = runtime_.max_texts();
  absl::StatusOr<std::vector<std::string>> texts =
      TextsOf(*request, text_index, limit);
  if (!texts.ok()) return fail(texts.status());
  std::vector<std::string> pairs;
  if (pair_index >= 0) {
    absl::StatusOr<std::vector<std::string>> decoded =
        TextsOf(*request, pair_index, limit);
    if (!decoded.ok()) return fail(decoded.status());
    if (decoded->size() != texts->size()) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat(kTextInput, " has ", texts->size(), " elements but ",
                       kTextPairInput, " has ", decoded->size())));
    }
    pairs = *std::move(decoded);
  }
  absl::StatusOr<RankSelector> selector = SelectorOf(request->parameters());
  if (!selector.ok()) return fail(selector.status());
  absl::StatusOr<std::optional<int64_t>> version =
      VersionOf(name, request->model_version());
  if (!version.ok()) return fail(version.status());

  // One lookup: the version reported below is the one computed with.
  InferenceCall call;
  call.model = name;
  call.version = *version;
  call.inputs.reserve(texts->size());
  for (size_t i = 0; i < texts->size(); ++i) {
    call.inputs.push_back(TextInput{std::move((*texts)[i]),
                                    pairs.empty() ? "" : std::move(pairs[i])});
  }
  call.rank = *std::move(selector);
  call.deadline = DeadlineOf(context->deadline());
  call.is_cancelled = [context] { return context->IsCancelled(); };
  absl::StatusOr<ResolvedRequest> resolved = runtime_.Resolve(std::move(call));
  if (!resolved.ok()) {
    return fail(resolved.status(),
                ServingRuntime::ResolvedModel(resolved.status()));
  }

  // Requested outputs (none: all of the model's).
  const auto* at_rank = std::get_if<AdapterAtRank>(&resolved->target());
  const bool backbone = at_rank == nullptr;
  const bool regression = !backbone && at_rank->adapter->regression();
  bool want_logits = request->outputs().empty() && !backbone;
  bool want_probabilities =
      request->outputs().empty() && !backbone && !regression;
  bool want_embedding = request->outputs().empty() && backbone;
  for (const auto& output : request->outputs()) {
    if (output.parameters().contains("shared_memory_region")) {
      return fail(absl::InvalidArgumentError(absl::StrCat(
                      "output ", output.name(),
                      " names a shared_memory_region; shared memory is not "
                      "supported")),
                  /*resolved=*/true);
    }
    if (!backbone && output.name() == kLogitsOutput) {
      want_logits = true;
    } else if (!backbone && !regression &&
               output.name() == kProbabilitiesOutput) {
      want_probabilities = true;
    } else if (backbone && output.name() == kEmbeddingOutput) {
      want_embedding = true;
    } else {
      return fail(
          absl::InvalidArgumentError(absl::StrCat(
              "model \"", name, "\" has no output \"", output.name(), "\"")),
          /*resolved=*/true);
    }
  }

  absl::Status submitted = runtime_.Submit(
      *std::move(resolved), [finish, response, name, id = request->id(),
                             want_logits, want_probabilities, want_embedding](
                                absl::StatusOr<InferenceResult> result) {
        if (!result.ok()) {
          finish(result.status(), name, 0);
          return;
        }
        const int64_t rows = result->rows();
        const auto* ran = std::get_if<AdapterAtRank>(&result->target);
        response->set_model_name(name);
        response->set_model_version(std::to_string(
            ran != nullptr ? ran->adapter->version : kBackboneVersion));
        response->set_id(id);
        auto* parameters = response->mutable_parameters();
        if (ran != nullptr) {
          SetParameter(parameters, wire::kRankParameter, ran->rank);
          SetParameter(parameters, wire::kRankSourceParameter,
                       ran->rank_source);
        }
        SetParameter(parameters, wire::kExecutionPathParameter,
                     ExecutionPathName(result->path));
        if (want_embedding) {
          AddOutput(kEmbeddingOutput, result->values, rows, result->width,
                    response);
        }
        if (want_logits) {
          AddOutput(kLogitsOutput, result->values, rows, result->width,
                    response);
        }
        if (want_probabilities) {
          AddOutput(kProbabilitiesOutput,
                    RowSoftmax(result->values, result->width), rows,
                    result->width, response);
        }
        finish(absl::OkStatus(), name, ran != nullptr ? ran->rank : 0);
      });
  if (!submitted.ok()) return fail(submitted, /*resolved=*/true);
  return reactor;
}

}  // namespace dylora::serving
