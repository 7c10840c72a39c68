#include "server/engine/engine.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/adapter/adapter_hooks.h"
#include "core/model/encoder.h"
#include "core/model/packed_linears.h"
#include "core/model/pooling.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "server/metrics/server_metrics.h"

namespace dylora::serving {
namespace {

// The batch's rows, padding-free (core/model/packed_inputs.h).
PackedInputs Pack(const std::vector<const TokenizedText*>& rows,
                  const Encoder& encoder) {
  std::vector<PackedRow> views;
  views.reserve(rows.size());
  for (const TokenizedText* row : rows)
    views.push_back({row->ids, row->type_ids});
  return PackRows(views, encoder.config(), encoder.device());
}

// The real merge: MergedWeights on the encoder, costed by its bytes; with
// a packed backbone, the merged layers packed in turn, in its precision
// (the others fall through to the backbone's packed layers).
MergeFunction EncoderMerge(
    std::shared_ptr<const Encoder> encoder,
    std::shared_ptr<const PackedLinears> packed_backbone) {
  return [encoder = std::move(encoder),
          packed_backbone = std::move(packed_backbone)](
             const ServedAdapter& adapter,
             int64_t rank) -> absl::StatusOr<MergedEntry> {
    c10::InferenceMode inference_mode;
    DYLORA_ASSIGN_OR_RETURN(auto merged,
                            MergedWeights(*adapter.adapter, *encoder, rank));
    if (packed_backbone == nullptr) {
      int64_t bytes = 0;
      for (const auto& [id, w] : merged)
        bytes += static_cast<int64_t>(w.nbytes());
      return MergedEntry{
          std::make_shared<const MergedWeightsHook>(std::move(merged)), bytes};
    }
    std::vector<PackedLinearSource> layers;
    for (auto& [id, w] : merged) {
      DYLORA_ASSIGN_OR_RETURN(at::Tensor bias, encoder->LinearBias(id));
      layers.push_back({id, std::move(w), bias});
    }
    DYLORA_ASSIGN_OR_RETURN(std::shared_ptr<const PackedLinears> packed,
                            PackedLinears::Create(packed_backbone->precision(),
                                                  layers, packed_backbone));
    const int64_t bytes = packed->bytes();
    return MergedEntry{std::move(packed), bytes};
  };
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

absl::Status EngineOptions::Validate() const {
  if (merge_after < 0 || merge_cache_mb < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("merge-after and merge-cache-mb must be >= 0, got ",
                     merge_after, " and ", merge_cache_mb));
  }
  // The budget in bytes must fit an int64.
  if (merge_cache_mb > (int64_t{1} << 40)) {
    return absl::InvalidArgumentError(
        absl::StrCat("merge-cache-mb ", merge_cache_mb, " is beyond 2^40 MiB"));
  }
  return absl::OkStatus();
}

Engine::Engine(std::shared_ptr<const Encoder> encoder, EngineOptions options,
               ServerMetrics* metrics, MergeFunction merge,
               std::shared_ptr<const PackedLinears> packed_backbone)
    : encoder_(std::move(encoder)),
      packed_backbone_(std::move(packed_backbone)),
      options_(options),
      metrics_(metrics),
      cache_(options.merge_cache_mb << 20, metrics),
      merger_(
          cache_,
          merge ? std::move(merge) : EncoderMerge(encoder_, packed_backbone_),
          metrics) {}

absl::StatusOr<BatchOutput> Engine::Run(const BackboneBatch& batch) const {
  const auto start = std::chrono::steady_clock::now();
  c10::InferenceMode inference_mode;
  DYLORA_ASSIGN_OR_RETURN(PackedInputs inputs, BatchInputs(batch.rows));
  DYLORA_ASSIGN_OR_RETURN(
      EncoderOutputs out,
      encoder_->ForwardPacked(inputs, packed_backbone_.get()));
  DYLORA_ASSIGN_OR_RETURN(
      at::Tensor mask, CallTorch("the pooling mask", [&] {
        return out.attention_mask.defined()
                   ? out.attention_mask
                   : at::ones(out.last_hidden_state.sizes().slice(0, 2),
                              out.last_hidden_state.options().dtype(at::kLong));
      }));
  DYLORA_ASSIGN_OR_RETURN(at::Tensor pooled,
                          MeanPool(out.last_hidden_state, mask));
  // sentence-transformers' Normalize: F.normalize(p=2, eps=1e-12).
  DYLORA_ASSIGN_OR_RETURN(
      at::Tensor embeddings, CallTorch("normalising embeddings", [&] {
        return pooled.div(pooled.norm(2, {1}, true).clamp_min(1e-12));
      }));
  return Finish(embeddings, ExecutionPath::kBackbone, batch.rows.size(), start);
}

absl::StatusOr<BatchOutput> Engine::Run(const AdapterBatch& batch) {
  const auto start = std::chrono::steady_clock::now();
  if (batch.rows.empty() || batch.ranks.size() != batch.rows.size()) {
    return absl::InternalError("an adapter batch needs one rank per row");
  }
  const ServedAdapter& adapter = *batch.adapter;
  const auto [low, high] =
      std::minmax_element(batch.ranks.begin(), batch.ranks.end());
  const bool single_rank = *low == *high;
  std::shared_ptr<const LinearHook> merged;
  if (single_rank && !options_.always_truncate) {
    merged = MergedOrSchedule(batch.adapter, *low,
                              static_cast<int64_t>(batch.rows.size()));
  }

  c10::InferenceMode inference_mode;
  DYLORA_ASSIGN_OR_RETURN(PackedInputs inputs, BatchInputs(batch.rows));
  EncoderOutputs out;
  if (merged != nullptr) {
    DYLORA_ASSIGN_OR_RETURN(out, encoder_->ForwardPacked(inputs, merged.get()));
  } else {
    RankSpec spec = RankSpec::Single(*low);
    if (!single_rank) {
      // Packed: one rank per token, repeated from its row.
      std::vector<int64_t> token_ranks;
      token_ranks.reserve(static_cast<size_t>(inputs.tokens()));
      for (size_t r = 0; r < batch.rows.size(); ++r) {
        token_ranks.insert(token_ranks.end(), batch.rows[r]->ids.size(),
                           batch.ranks[r]);
      }
      DYLORA_ASSIGN_OR_RETURN(
          at::Tensor ranks, CallTorch("building the rank tensor", [&] {
            return at::tensor(token_ranks, at::kLong).to(encoder_->device());
          }));
      spec = RankSpec::PerRow(std::move(ranks));
    }
    DYLORA_ASSIGN_OR_RETURN(
        const std::unique_ptr<AdapterHook> hook,
        AdapterHook::CreateUnchecked(*adapter.adapter, std::move(spec), *high,
                                     packed_backbone_));
    DYLORA_ASSIGN_OR_RETURN(out, encoder_->ForwardPacked(inputs, hook.get()));
  }
  DYLORA_ASSIGN_OR_RETURN(at::Tensor logits, adapter.head.Forward(out));
  return Finish(
      logits,
      merged != nullptr ? ExecutionPath::kMerged : ExecutionPath::kTruncated,
      batch.rows.size(), start);
}

absl::StatusOr<PackedInputs> Engine::BatchInputs(
    const std::vector<const TokenizedText*>& rows) const {
  return CallTorch("building the batch tensors",
                   [&] { return Pack(rows, *encoder_); });
}

absl::StatusOr<BatchOutput> Engine::Finish(
    const at::Tensor& result, ExecutionPath path, size_t rows,
    std::chrono::steady_clock::time_point start) const {
  // The one device sync of a batch.
  DYLORA_ASSIGN_OR_RETURN(at::Tensor host,
                          CallTorch("copying the outputs to the host", [&] {
                            return result.to(at::kCPU, at::kFloat).contiguous();
                          }));
  if (host.dim() != 2 || host.size(0) != static_cast<int64_t>(rows)) {
    return absl::InternalError(absl::StrCat(
        "engine output has ", host.dim(), " dims and ",
        host.dim() > 0 ? host.size(0) : 0, " rows for ", rows, " input rows"));
  }
  BatchOutput output;
  output.path = path;
  output.width = host.size(1);
  const float* data = host.data_ptr<float>();
  output.values.assign(data, data + host.numel());
  if (metrics_ != nullptr) {
    metrics_->ObserveBatch(ExecutionPathName(path), static_cast<int64_t>(rows),
                           SecondsSince(start));
  }
  return output;
}

absl::Status Engine::Prewarm(std::shared_ptr<const ServedAdapter> adapter,
                             const std::vector<int64_t>& ranks) {
  for (int64_t rank : ranks) {
    if (absl::Status valid = adapter->adapter->ValidateRank(rank);
        !valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pre-warm of adapter '", adapter->name, "': ", valid.message()));
    }
  }
  return merger_.MergeAndWait(std::move(adapter), ranks);
}

void Engine::Forget(const ServedAdapter& version) {
  cache_.Retire(version.name, version.version);
  absl::MutexLock lock(&mu_);
  for (auto it = rows_seen_.begin(); it != rows_seen_.end();) {
    if (it->first.adapter == version.name &&
        it->first.version <= version.version) {
      rows_seen_.erase(it++);
    } else {
      ++it;
    }
  }
}

std::vector<int64_t> Engine::CachedRanks(const ServedAdapter& adapter) const {
  return cache_.CachedRanks(adapter.name, adapter.version);
}

std::shared_ptr<const LinearHook> Engine::MergedOrSchedule(
    const std::shared_ptr<const ServedAdapter>& adapter, int64_t rank,
    int64_t rows) {
  MergeKey key{adapter->name, adapter->version, rank};
  if (auto hit = cache_.Lookup(key)) return hit;
  if (options_.merge_after <= 0) return nullptr;
  {
    absl::MutexLock lock(&mu_);
    // Under mu_: Forget retires first, then clears the counters under mu_.
    if (cache_.IsRetired(key)) return nullptr;
    int64_t& seen = rows_seen_[key];
    seen += rows;
    if (seen < options_.merge_after) return nullptr;
    rows_seen_.erase(key);
  }
  merger_.Schedule(adapter, rank);
  return nullptr;
}

}  // namespace dylora::serving
