#include "server/engine/engine.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/adapter/adapter_hooks.h"
#include "core/model/encoder.h"
#include "core/model/pooling.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "server/metrics/server_metrics.h"

namespace dylora::serving {
namespace {

// Checks the rows before any tensor is built or merge is made; errors name
// the row. Encoder::Forward checks ids again, without the row.
absl::Status ValidateRows(const Encoder& encoder, const ServedAdapter* adapter,
                          const std::vector<const EngineRow*>& rows) {
  const EncoderConfig& config = encoder.config();
  if (rows.empty()) return absl::InvalidArgumentError("batch has no rows");
  for (size_t i = 0; i < rows.size(); ++i) {
    const EngineRow* row = rows[i];
    if (row == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("row ", i, " is null"));
    }
    if (row->ids.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("row ", i, " has no ids"));
    }
    if (row->ids.size() != row->type_ids.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("row ", i, " has ", row->ids.size(), " ids but ",
                       row->type_ids.size(), " type ids"));
    }
    if (static_cast<int64_t>(row->ids.size()) > encoder.max_sequence_length()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row ", i, " has ", row->ids.size(), " tokens, more than the ",
          encoder.max_sequence_length(), " the model supports"));
    }
    for (size_t t = 0; t < row->ids.size(); ++t) {
      if (row->ids[t] < 0 || row->ids[t] >= config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "row ", i, " token ", t, ": id ", row->ids[t],
            " is outside the vocabulary [0, ", config.vocab_size, ")"));
      }
      if (row->type_ids[t] < 0 || row->type_ids[t] >= config.type_vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "row ", i, " token ", t, ": type id ", row->type_ids[t],
            " is outside [0, ", config.type_vocab_size, ")"));
      }
    }
    if (adapter != nullptr) {
      if (absl::Status s = adapter->adapter->ValidateRank(row->rank); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "row ", i, " of adapter '", adapter->name, "': ", s.message()));
      }
    }
  }
  return absl::OkStatus();
}

// [rows, longest] right-padded with `pad_id`, mask 1 on real tokens.
EncoderInputs BuildInputs(const std::vector<const EngineRow*>& rows,
                          int64_t pad_id, c10::Device device) {
  size_t longest = 0;
  for (const EngineRow* row : rows)
    longest = std::max(longest, row->ids.size());
  const int64_t batch = static_cast<int64_t>(rows.size());
  const int64_t seq = static_cast<int64_t>(longest);
  at::Tensor ids = at::full({batch, seq}, pad_id, at::kLong);
  at::Tensor types = at::zeros({batch, seq}, at::kLong);
  at::Tensor mask = at::zeros({batch, seq}, at::kLong);
  int64_t* ids_data = ids.data_ptr<int64_t>();
  int64_t* types_data = types.data_ptr<int64_t>();
  int64_t* mask_data = mask.data_ptr<int64_t>();
  for (int64_t r = 0; r < batch; ++r) {
    const EngineRow& row = *rows[r];
    for (size_t t = 0; t < row.ids.size(); ++t) {
      ids_data[r * seq + t] = row.ids[t];
      types_data[r * seq + t] = row.type_ids[t];
      mask_data[r * seq + t] = 1;
    }
  }
  return EncoderInputs{ids.to(device), types.to(device), mask.to(device)};
}

// Sum of the merged matrices' sizes: what a cache entry costs.
int64_t MergedBytes(
    const std::vector<std::pair<LinearId, at::Tensor>>& merged) {
  int64_t bytes = 0;
  for (const auto& [id, w] : merged) bytes += static_cast<int64_t>(w.nbytes());
  return bytes;
}

}  // namespace

Engine::Engine(std::shared_ptr<const Encoder> encoder, EngineOptions options,
               ServerMetrics* metrics)
    : encoder_(std::move(encoder)),
      options_(options),
      metrics_(metrics),
      cache_(options.merge_cache_bytes, metrics) {}

absl::StatusOr<EngineOutput> Engine::Run(
    const ServedAdapter* adapter, const std::vector<const EngineRow*>& rows) {
  if (encoder_ == nullptr) {
    return absl::FailedPreconditionError("engine has no encoder");
  }
  if (adapter != nullptr && adapter->adapter == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("adapter '", adapter->name, "' has no factors"));
  }
  DYLORA_RETURN_IF_ERROR(ValidateRows(*encoder_, adapter, rows));

  const auto start = std::chrono::steady_clock::now();
  c10::InferenceMode inference_mode;
  DYLORA_ASSIGN_OR_RETURN(
      EncoderInputs inputs, CallTorch("building the batch tensors", [&] {
        return BuildInputs(rows, encoder_->config().pad_token_id,
                           encoder_->device());
      }));

  EngineOutput output;
  at::Tensor result;
  if (adapter == nullptr) {
    output.path = ExecutionPath::kBackbone;
    DYLORA_ASSIGN_OR_RETURN(EncoderOutputs out, encoder_->Forward(inputs));
    DYLORA_ASSIGN_OR_RETURN(at::Tensor pooled, MeanPool(out.last_hidden_state,
                                                        inputs.attention_mask));
    // sentence-transformers' Normalize: F.normalize(p=2, eps=1e-12).
    DYLORA_ASSIGN_OR_RETURN(
        result, CallTorch("normalising embeddings", [&] {
          return pooled.div(pooled.norm(2, {1}, true).clamp_min(1e-12));
        }));
  } else {
    const int64_t first_rank = rows.front()->rank;
    const bool single_rank = std::all_of(
        rows.begin(), rows.end(),
        [&](const EngineRow* row) { return row->rank == first_rank; });
    std::shared_ptr<const MergedWeightsHook> merged;
    if (single_rank && !options_.force_truncated) {
      DYLORA_ASSIGN_OR_RETURN(
          merged,
          MergedFor(*adapter, first_rank, static_cast<int64_t>(rows.size())));
    }
    EncoderOutputs out;
    if (merged != nullptr) {
      output.path = ExecutionPath::kMerged;
      DYLORA_ASSIGN_OR_RETURN(out, encoder_->Forward(inputs, merged.get()));
    } else {
      output.path = ExecutionPath::kTruncated;
      RankSpec spec = RankSpec::Single(first_rank);
      if (!single_rank) {
        DYLORA_ASSIGN_OR_RETURN(
            at::Tensor ranks, CallTorch("building the rank tensor", [&] {
              std::vector<int64_t> values;
              values.reserve(rows.size());
              for (const EngineRow* row : rows) values.push_back(row->rank);
              return at::tensor(values, at::kLong).to(encoder_->device());
            }));
        spec = RankSpec::PerRow(std::move(ranks));
      }
      DYLORA_ASSIGN_OR_RETURN(
          std::unique_ptr<AdapterHook> hook,
          AdapterHook::Create(*adapter->adapter, std::move(spec)));
      DYLORA_ASSIGN_OR_RETURN(out, encoder_->Forward(inputs, hook.get()));
    }
    DYLORA_ASSIGN_OR_RETURN(result, adapter->head.Forward(out));
  }

  DYLORA_ASSIGN_OR_RETURN(at::Tensor host,
                          CallTorch("copying the outputs to the host", [&] {
                            return result.to(at::kCPU, at::kFloat).contiguous();
                          }));
  if (host.dim() != 2 || host.size(0) != static_cast<int64_t>(rows.size())) {
    return absl::InternalError(
        absl::StrCat("engine output has ", host.dim(), " dims and ",
                     host.dim() > 0 ? host.size(0) : 0, " rows for ",
                     rows.size(), " input rows"));
  }
  output.width = host.size(1);
  const float* data = host.data_ptr<float>();
  output.values.assign(data, data + host.numel());

  if (metrics_ != nullptr) {
    const std::chrono::duration<double> seconds =
        std::chrono::steady_clock::now() - start;
    metrics_->ObserveBatch(ExecutionPathName(output.path),
                           static_cast<int64_t>(rows.size()), seconds.count());
  }
  return output;
}

absl::Status Engine::Prewarm(const ServedAdapter& adapter,
                             const std::vector<int64_t>& ranks) {
  if (encoder_ == nullptr) {
    return absl::FailedPreconditionError("engine has no encoder");
  }
  if (adapter.adapter == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("adapter '", adapter.name, "' has no factors"));
  }
  for (int64_t rank : ranks) {
    bool cached = false;
    DYLORA_RETURN_IF_ERROR(Merge(adapter, rank, &cached).status());
    if (!cached) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "merged weights of adapter '", adapter.name, "' at rank ", rank,
          " do not fit the merge cache budget of ", cache_.budget_bytes(),
          " bytes"));
    }
  }
  return absl::OkStatus();
}

void Engine::Forget(absl::string_view name) {
  cache_.EraseAdapter(name);
  absl::MutexLock lock(&mu_);
  for (auto it = rows_seen_.begin(); it != rows_seen_.end();) {
    if (it->first.adapter == name) {
      rows_seen_.erase(it++);
    } else {
      ++it;
    }
  }
}

std::vector<int64_t> Engine::CachedRanks(const ServedAdapter& adapter) const {
  return cache_.CachedRanks(adapter.name, adapter.version);
}

absl::StatusOr<std::shared_ptr<const MergedWeightsHook>> Engine::MergedFor(
    const ServedAdapter& adapter, int64_t rank, int64_t rows) {
  MergeKey key{adapter.name, adapter.version, rank};
  if (auto hit = cache_.Lookup(key)) return hit;
  if (options_.merge_after_rows <= 0) return nullptr;
  {
    absl::MutexLock lock(&mu_);
    int64_t& seen = rows_seen_[key];
    seen += rows;
    if (seen < options_.merge_after_rows) return nullptr;
    // This thread merges; concurrent batches start counting afresh rather
    // than merging the same rank again.
    rows_seen_.erase(key);
  }
  bool cached = false;
  return Merge(adapter, rank, &cached);
}

absl::StatusOr<std::shared_ptr<const MergedWeightsHook>> Engine::Merge(
    const ServedAdapter& adapter, int64_t rank, bool* cached) {
  c10::InferenceMode inference_mode;
  DYLORA_ASSIGN_OR_RETURN(auto merged,
                          MergedWeights(*adapter.adapter, *encoder_, rank));
  const int64_t bytes = MergedBytes(merged);
  auto hook = std::make_shared<const MergedWeightsHook>(std::move(merged));
  if (metrics_ != nullptr) metrics_->CountMerge();
  // A merge too large for the cache still serves the batch that asked.
  *cached =
      cache_.Insert(MergeKey{adapter.name, adapter.version, rank}, hook, bytes);
  return hook;
}

}  // namespace dylora::serving
