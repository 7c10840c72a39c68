#include "client/classifier.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proto/kserve/kserve_tensors.h"
#include "proto/wire_names.h"

namespace dylora::client {
namespace {

namespace v1 = ::dylora::v1;

const char* ExecutionPathName(v1::ExecutionPath path) {
  switch (path) {
    case v1::EXECUTION_PATH_TRUNCATED:
      return wire::kPathTruncated;
    case v1::EXECUTION_PATH_MERGED:
      return wire::kPathMerged;
    default:
      return "unspecified";
  }
}

absl::Status Malformed(const Connection& connection, absl::string_view rpc,
                       absl::string_view what) {
  return absl::DataLossError(
      absl::StrCat(connection.server(), " answered ", rpc,
                   " with a malformed response: ", what));
}

// Fills label (argmax) and the regression value from the logits.
void FinishPrediction(bool regression, Prediction& prediction) {
  if (regression) {
    prediction.value = prediction.logits.empty() ? 0 : prediction.logits[0];
    return;
  }
  prediction.label =
      std::max_element(prediction.logits.begin(), prediction.logits.end()) -
      prediction.logits.begin();
}

}  // namespace

absl::StatusOr<v1::RankPolicy> V1RankPolicy(absl::string_view name) {
  const char* policy =
      wire::CanonicalPolicyName(std::string_view(name.data(), name.size()));
  if (policy == wire::kPolicyMax) return v1::RANK_POLICY_MAX;
  if (policy == wire::kPolicyBest) return v1::RANK_POLICY_BEST;
  if (policy == wire::kPolicySmallestWithinTolerance) {
    return v1::RANK_POLICY_SMALLEST_WITHIN_TOLERANCE;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown rank policy \"", name, "\"; valid: ", wire::kPolicyNames));
}

const char* ProtocolName(Protocol protocol) {
  return protocol == Protocol::kKServe ? "kserve" : "dylora.v1";
}

std::string RankChoice::Describe() const {
  if (rank.has_value()) return absl::StrCat("rank ", *rank);
  if (!profile.empty()) return absl::StrCat("profile ", profile);
  if (!policy.empty()) return absl::StrCat("policy ", policy);
  return "server default";
}

absl::Status ValidateRankChoice(const RankChoice& choice) {
  const int given = choice.rank.has_value() + !choice.profile.empty() +
                    !choice.policy.empty();
  if (given > 1) {
    return absl::InvalidArgumentError(
        "give at most one of --rank, --profile and --policy");
  }
  if (choice.rank.has_value() && *choice.rank < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rank must be >= 1, not ", *choice.rank));
  }
  if (!choice.policy.empty()) return V1RankPolicy(choice.policy).status();
  return absl::OkStatus();
}

absl::StatusOr<ClassifyResult> Classifier::Classify(
    const std::string& adapter, const std::vector<TextItem>& texts,
    const RankChoice& rank) const {
  if (absl::Status valid = ValidateRankChoice(rank); !valid.ok()) return valid;
  return protocol_ == Protocol::kKServe ? ClassifyKServe(adapter, texts, rank)
                                        : ClassifyV1(adapter, texts, rank);
}

absl::StatusOr<ClassifyResult> Classifier::ClassifyV1(
    const std::string& adapter, const std::vector<TextItem>& texts,
    const RankChoice& rank) const {
  v1::ClassifyRequest request;
  request.set_adapter(adapter);
  for (const TextItem& item : texts) {
    v1::TextInput* input = request.add_inputs();
    input->set_text(item.text);
    if (!item.text_pair.empty()) input->set_text_pair(item.text_pair);
  }
  SetRankSelector(rank, request);  // validated by Classify

  v1::ClassifyResponse response;
  grpc::ClientContext context;
  connection_.PrepareInference(context, adapter);
  const absl::Time start = absl::Now();
  const grpc::Status status =
      connection_.dylora().Classify(&context, request, &response);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (absl::Status checked = connection_.Check(status, "Classify");
      !checked.ok()) {
    return checked;
  }
  if (response.predictions_size() != static_cast<int>(texts.size())) {
    return Malformed(connection_, "Classify",
                     absl::StrCat(response.predictions_size(),
                                  " predictions for ", texts.size(), " texts"));
  }
  ClassifyResult result;
  result.adapter_version = response.adapter_version();
  result.rank = response.rank();
  result.rank_source = response.rank_source();
  result.execution_path = ExecutionPathName(response.execution_path());
  result.regression = response.regression();
  result.client_seconds = seconds;
  result.timings = ServerTimings{
      response.timings().queue_seconds(), response.timings().compute_seconds(),
      response.timings().total_seconds(), response.timings().batch_size()};
  for (const v1::Prediction& served : response.predictions()) {
    Prediction prediction;
    prediction.label = served.label();
    prediction.scores.assign(served.scores().begin(), served.scores().end());
    prediction.logits.assign(served.logits().begin(), served.logits().end());
    prediction.value = served.value();
    result.predictions.push_back(std::move(prediction));
  }
  return result;
}

absl::StatusOr<ClassifyResult> Classifier::ClassifyKServe(
    const std::string& adapter, const std::vector<TextItem>& texts,
    const RankChoice& rank) const {
  inference::ModelInferRequest request;
  request.set_model_name(adapter);
  const bool pairs =
      std::any_of(texts.begin(), texts.end(),
                  [](const TextItem& item) { return !item.text_pair.empty(); });
  std::vector<std::string> text_elements, pair_elements;
  for (const TextItem& item : texts) {
    text_elements.push_back(item.text);
    pair_elements.push_back(item.text_pair);
  }
  auto add_input = [&request, &texts](
                       const char* name,
                       const std::vector<std::string>& elements) {
    auto* input = request.add_inputs();
    input->set_name(name);
    input->set_datatype("BYTES");
    input->add_shape(static_cast<int64_t>(texts.size()));
    request.add_raw_input_contents(kserve::EncodeRawBytesTensor(elements));
  };
  add_input(wire::kTextInput, text_elements);
  if (pairs) add_input(wire::kTextPairInput, pair_elements);
  auto& parameters = *request.mutable_parameters();
  if (rank.rank.has_value()) {
    parameters[wire::kRankParameter].set_int64_param(*rank.rank);
  } else if (!rank.profile.empty()) {
    parameters[wire::kProfileParameter].set_string_param(rank.profile);
  } else if (!rank.policy.empty()) {
    parameters[wire::kPolicyParameter].set_string_param(rank.policy);
  }

  inference::ModelInferResponse response;
  grpc::ClientContext context;
  connection_.PrepareInference(context, adapter);
  const absl::Time start = absl::Now();
  const grpc::Status status =
      connection_.kserve().ModelInfer(&context, request, &response);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (absl::Status checked = connection_.Check(status, "ModelInfer");
      !checked.ok()) {
    return checked;
  }

  // Outputs by name: logits always, probabilities for classification.
  const int64_t rows = static_cast<int64_t>(texts.size());
  std::vector<float> logits, probabilities;
  int64_t width = 0;
  bool has_logits = false, has_probabilities = false;
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& output = response.outputs(i);
    std::vector<float> values;
    if (i < response.raw_output_contents_size()) {
      values = kserve::DecodeRawFp32(response.raw_output_contents(i));
    } else {
      values.assign(output.contents().fp32_contents().begin(),
                    output.contents().fp32_contents().end());
    }
    if (output.shape_size() != 2 || output.shape(0) != rows ||
        output.shape(1) < 1 ||
        static_cast<int64_t>(values.size()) != rows * output.shape(1)) {
      return Malformed(
          connection_, "ModelInfer",
          absl::StrCat("output ", output.name(), " holds ", values.size(),
                       " values, not [", rows, ", L]"));
    }
    if (output.name() == wire::kLogitsOutput) {
      logits = std::move(values);
      width = output.shape(1);
      has_logits = true;
    } else if (output.name() == wire::kProbabilitiesOutput) {
      probabilities = std::move(values);
      has_probabilities = true;
    }
  }
  if (!has_logits)
    return Malformed(connection_, "ModelInfer", "no logits output");
  if (has_probabilities && probabilities.size() != logits.size()) {
    return Malformed(connection_, "ModelInfer",
                     "probabilities and logits differ in shape");
  }

  ClassifyResult result;
  result.regression = !has_probabilities;
  result.client_seconds = seconds;
  (void)absl::SimpleAtoi(response.model_version(), &result.adapter_version);
  const auto& parameters_out = response.parameters();
  if (auto it = parameters_out.find(wire::kRankParameter);
      it != parameters_out.end()) {
    result.rank = it->second.int64_param();
  }
  if (auto it = parameters_out.find(wire::kRankSourceParameter);
      it != parameters_out.end()) {
    result.rank_source = it->second.string_param();
  }
  if (auto it = parameters_out.find(wire::kExecutionPathParameter);
      it != parameters_out.end()) {
    result.execution_path = it->second.string_param();
  }
  for (int64_t row = 0; row < rows; ++row) {
    Prediction prediction;
    prediction.logits.assign(logits.begin() + row * width,
                             logits.begin() + (row + 1) * width);
    if (has_probabilities) {
      prediction.scores.assign(probabilities.begin() + row * width,
                               probabilities.begin() + (row + 1) * width);
    }
    FinishPrediction(result.regression, prediction);
    result.predictions.push_back(std::move(prediction));
  }
  return result;
}

}  // namespace dylora::client
