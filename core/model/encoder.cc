#include "core/model/encoder.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <limits>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace dylora {
namespace {

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The most negative finite value of `dtype`, as HF's torch.finfo(dtype).min:
// the additive mask that removes padded keys from the softmax.
double LowestFinite(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kDouble:
      return std::numeric_limits<double>::lowest();
    case c10::kHalf:
      return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    case c10::kBFloat16:
      return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    default:
      return static_cast<double>(std::numeric_limits<float>::lowest());
  }
}

at::Tensor Activate(Activation act, const at::Tensor& x) {
  switch (act) {
    case Activation::kGeluExact:
      return at::gelu(x);
    case Activation::kGeluTanh:
      return at::gelu(x, "tanh");
    case Activation::kRelu:
      return at::relu(x);
    case Activation::kSilu:
      return at::silu(x);
  }
  return at::gelu(x);
}

// A hook's output for linear `id` (from Apply, or from the method named by
// `method`, e.g. "::ApplyQueryKeyValue") must have x W^T's shape: another
// is a bug in the hook, reported (as INTERNAL) rather than silently
// broadcast.
void CheckHookOutput(const at::Tensor& y, const at::Tensor& x,
                     const at::Tensor& weight, const LinearId& id,
                     const char* method) {
  std::vector<int64_t> expected = x.sizes().vec();
  expected.back() = weight.size(0);
  TORCH_CHECK(y.defined() && y.sizes() == at::IntArrayRef(expected),
              "LinearHook", method, " for ", id.ModulePath(), " returned ",
              y.defined() ? ShapeString(y.sizes()) : std::string("nothing"),
              ", expected ", ShapeString(expected));
}

// x W^T + b, through the hook when there is one.
at::Tensor Linear(const LinearHook* hook, int64_t layer, LinearKind kind,
                  const LinearWeights& w, const at::Tensor& x) {
  if (hook == nullptr) return at::linear(x, w.weight, w.bias);
  const LinearId id{layer, kind};
  at::Tensor y = hook->Apply(id, x, w.weight, w.bias);
  CheckHookOutput(y, x, w.weight, id, "");
  return y;
}

at::Tensor LayerNorm(const at::Tensor& x, const LayerNormWeights& w,
                     double eps) {
  return at::layer_norm(x, {x.size(-1)}, w.weight, w.bias, eps);
}

// [B, S, H] -> [B, heads, S, head_dim]
at::Tensor SplitHeads(const at::Tensor& x, int64_t heads) {
  return x.view({x.size(0), x.size(1), heads, x.size(2) / heads})
      .transpose(1, 2);
}

absl::Status CheckIntegral(const at::Tensor& t, absl::string_view name) {
  if (!at::isIntegralType(t.scalar_type(), /*includeBool=*/false)) {
    return absl::InvalidArgumentError(
        absl::StrCat("encoder input ", name, " must be an integer tensor, got ",
                     c10::toString(t.scalar_type())));
  }
  return absl::OkStatus();
}

// Values of `t` must lie in [0, limit).
absl::Status CheckRange(const at::Tensor& t, int64_t limit,
                        absl::string_view name, absl::string_view limit_name) {
  const int64_t lo = t.min().item<int64_t>();
  const int64_t hi = t.max().item<int64_t>();
  if (lo < 0 || hi >= limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "encoder input ", name, " has values in [", lo, ", ", hi,
        "], outside [0, ", limit, ") (", limit_name, " = ", limit, ")"));
  }
  return absl::OkStatus();
}

// ParseEncoderConfig already enforces these; a hand-built config must too,
// or Forward would divide by zero or index out of the tables.
absl::Status CheckConfig(const EncoderConfig& c, absl::string_view origin) {
  std::vector<std::string> problems;
  for (const auto& [value, name] :
       {std::pair(c.vocab_size, "vocab_size"),
        std::pair(c.hidden_size, "hidden_size"),
        std::pair(c.num_hidden_layers, "num_hidden_layers"),
        std::pair(c.num_attention_heads, "num_attention_heads"),
        std::pair(c.intermediate_size, "intermediate_size"),
        std::pair(c.type_vocab_size, "type_vocab_size")}) {
    if (value <= 0)
      problems.push_back(absl::StrCat(name, " = ", value, " must be > 0"));
  }
  if (c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads != 0) {
    problems.push_back(absl::StrCat("hidden_size ", c.hidden_size,
                                    " is not divisible by num_attention_heads ",
                                    c.num_attention_heads));
  }
  if (c.position_offset < 0 || c.max_position_embeddings <= c.position_offset) {
    problems.push_back(
        absl::StrCat("max_position_embeddings ", c.max_position_embeddings,
                     " leaves no positions after offset ", c.position_offset));
  }
  if (c.family == EncoderFamily::kRoberta &&
      (c.pad_token_id < 0 || c.pad_token_id >= c.max_position_embeddings)) {
    problems.push_back(absl::StrCat("pad_token_id ", c.pad_token_id,
                                    " is not a valid RoBERTa position"));
  }
  if (!(c.layer_norm_eps > 0)) {
    problems.push_back(
        absl::StrCat("layer_norm_eps ", c.layer_norm_eps, " must be > 0"));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      origin, ": invalid encoder config: ", absl::StrJoin(problems, "; ")));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Encoder>> Encoder::FromTensors(
    const EncoderConfig& config,
    const std::map<std::string, at::Tensor>& tensors,
    const LoadOptions& options, std::string origin, std::string fingerprint) {
  DYLORA_RETURN_IF_ERROR(CheckConfig(config, origin));
  DYLORA_ASSIGN_OR_RETURN(
      EncoderWeights weights,
      BuildEncoderWeights(config, tensors, origin, options));
  return std::unique_ptr<Encoder>(
      new Encoder(config, std::move(weights), options, std::move(fingerprint)));
}

int64_t Encoder::max_sequence_length() const {
  return config_.max_position_embeddings - config_.position_offset;
}

absl::StatusOr<at::Tensor> Encoder::LinearWeight(const LinearId& id) const {
  if (id.layer < 0 || id.layer >= config_.num_hidden_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("no linear layer ", id.ModulePath(), ": the encoder has ",
                     config_.num_hidden_layers, " layers"));
  }
  return weights_.layers[static_cast<size_t>(id.layer)].linear(id.kind).weight;
}

absl::StatusOr<at::Tensor> Encoder::LinearBias(const LinearId& id) const {
  DYLORA_RETURN_IF_ERROR(LinearWeight(id).status());
  return weights_.layers[static_cast<size_t>(id.layer)].linear(id.kind).bias;
}

int64_t Encoder::InFeatures(LinearKind kind) const {
  return kind == LinearKind::kOutput ? config_.intermediate_size
                                     : config_.hidden_size;
}

int64_t Encoder::OutFeatures(LinearKind kind) const {
  return kind == LinearKind::kIntermediate ? config_.intermediate_size
                                           : config_.hidden_size;
}

std::vector<LinearId> Encoder::LinearIds(
    const std::vector<LinearKind>& kinds) const {
  std::vector<LinearId> ids;
  for (int64_t layer = 0; layer < config_.num_hidden_layers; ++layer) {
    for (LinearKind kind : kAllLinearKinds) {
      for (LinearKind wanted : kinds) {
        if (wanted == kind) {
          ids.push_back({layer, kind});
          break;
        }
      }
    }
  }
  return ids;
}

absl::Status Encoder::ValidateInputs(const EncoderInputs& in) const {
  if (!in.input_ids.defined()) {
    return absl::InvalidArgumentError("encoder input input_ids is missing");
  }
  const at::Tensor& ids = in.input_ids;
  if (ids.dim() != 2 || ids.size(0) == 0 || ids.size(1) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "encoder input input_ids must be [batch, seq] with both > 0, got ",
        ShapeString(ids.sizes())));
  }
  DYLORA_RETURN_IF_ERROR(CheckIntegral(ids, "input_ids"));
  const int64_t seq = ids.size(1);
  if (seq > max_sequence_length()) {
    return absl::InvalidArgumentError(
        absl::StrCat("encoder input has sequence length ", seq,
                     ", longer than the ", max_sequence_length(),
                     " positions the model supports (max_position_embeddings ",
                     config_.max_position_embeddings, ")"));
  }
  for (const auto& [t, name] :
       {std::pair(&in.token_type_ids, "token_type_ids"),
        std::pair(&in.attention_mask, "attention_mask")}) {
    if (t->defined() && t->sizes() != ids.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "encoder input ", name, " has shape ", ShapeString(t->sizes()),
          ", but input_ids has shape ", ShapeString(ids.sizes())));
    }
  }
  DYLORA_RETURN_IF_ERROR(
      CheckRange(ids, config_.vocab_size, "input_ids", "vocab_size"));
  if (in.token_type_ids.defined()) {
    DYLORA_RETURN_IF_ERROR(CheckIntegral(in.token_type_ids, "token_type_ids"));
    DYLORA_RETURN_IF_ERROR(CheckRange(in.token_type_ids,
                                      config_.type_vocab_size, "token_type_ids",
                                      "type_vocab_size"));
  }
  if (in.attention_mask.defined()) {
    const at::Tensor& m = in.attention_mask;
    if (m.is_complex()) {
      return absl::InvalidArgumentError(
          "encoder input attention_mask is complex");
    }
    if (at::logical_and(m.ne(0), m.ne(1)).any().item<bool>()) {
      return absl::InvalidArgumentError(
          "encoder input attention_mask must hold only 0 and 1");
    }
  }
  return absl::OkStatus();
}

at::Tensor Encoder::Embed(const at::Tensor& ids, const at::Tensor& types,
                          const at::Tensor& positions) const {
  const EncoderWeights& w = weights_;
  // Same summation order as HF: (words + token types) + positions.
  at::Tensor x = at::embedding(w.word_embeddings, ids)
                     .add(at::embedding(w.token_type_embeddings, types))
                     .add(at::embedding(w.position_embeddings, positions));
  return LayerNorm(x, w.embeddings_norm, config_.layer_norm_eps);
}

at::Tensor Encoder::Attend(const at::Tensor& q, const at::Tensor& k,
                           const at::Tensor& v,
                           const std::optional<at::Tensor>& mask,
                           Dropout* dropout) const {
  const EncoderConfig& c = config_;
  const int64_t batch = q.size(0);
  const int64_t seq = q.size(1);
  const at::Tensor qh = SplitHeads(q, c.num_attention_heads);
  const at::Tensor kh = SplitHeads(k, c.num_attention_heads);
  const at::Tensor vh = SplitHeads(v, c.num_attention_heads);
  at::Tensor context;
  if (dropout != nullptr && dropout->attention > 0) {
    // SDPA's own dropout draws from the global generator; spelled out so
    // the masks come from ours.
    at::Tensor scores =
        at::matmul(qh, kh.transpose(-1, -2))
            .mul(1.0 / std::sqrt(static_cast<double>(c.head_dim())));
    if (mask) scores = scores.add(*mask);
    context = at::matmul(ApplyDropout(at::softmax(scores, -1),
                                      dropout->attention, dropout->generator),
                         vh);
  } else {
    context = at::scaled_dot_product_attention(qh, kh, vh, mask);
  }
  return context.transpose(1, 2).reshape({batch, seq, c.hidden_size});
}

at::Tensor Encoder::Layers(at::Tensor x, const LinearHook* hook,
                           Dropout* dropout,
                           const AttentionFunction& attend) const {
  const EncoderConfig& c = config_;
  const double hidden_p = dropout == nullptr ? 0 : dropout->hidden;
  // Training-time dropout where BERT has it; identity without `dropout`.
  auto drop = [&](const at::Tensor& t) {
    return hidden_p > 0 ? ApplyDropout(t, hidden_p, dropout->generator) : t;
  };
  x = drop(x);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const EncoderLayerWeights& l = weights_.layers[static_cast<size_t>(i)];
    at::Tensor q, k, v;
    if (auto fused =
            hook != nullptr ? hook->ApplyQueryKeyValue(i, x) : std::nullopt) {
      q = (*fused)[0];
      k = (*fused)[1];
      v = (*fused)[2];
      CheckHookOutput(q, x, l.query.weight, {i, LinearKind::kQuery},
                      "::ApplyQueryKeyValue");
      CheckHookOutput(k, x, l.key.weight, {i, LinearKind::kKey},
                      "::ApplyQueryKeyValue");
      CheckHookOutput(v, x, l.value.weight, {i, LinearKind::kValue},
                      "::ApplyQueryKeyValue");
    } else {
      // Named, so the hook sees query, key, value in order (argument
      // evaluation order is unspecified).
      q = Linear(hook, i, LinearKind::kQuery, l.query, x);
      k = Linear(hook, i, LinearKind::kKey, l.key, x);
      v = Linear(hook, i, LinearKind::kValue, l.value, x);
    }
    const at::Tensor context = attend(q, k, v);
    const at::Tensor attn = Linear(hook, i, LinearKind::kAttentionOutput,
                                   l.attention_output, context);
    x = LayerNorm(drop(attn).add(x), l.attention_norm, c.layer_norm_eps);
    const at::Tensor inter =
        Activate(c.hidden_act,
                 Linear(hook, i, LinearKind::kIntermediate, l.intermediate, x));
    const at::Tensor out =
        Linear(hook, i, LinearKind::kOutput, l.output, inter);
    x = LayerNorm(drop(out).add(x), l.output_norm, c.layer_norm_eps);
  }
  return x;
}

void Encoder::Pool(EncoderOutputs& outputs) const {
  if (!weights_.pooler.has_value()) return;
  outputs.pooler_output =
      at::tanh(at::linear(outputs.last_hidden_state.select(1, 0),
                          weights_.pooler->weight, weights_.pooler->bias));
}

std::optional<at::Tensor> Encoder::AdditiveMask(
    const at::Tensor& mask01) const {
  return at::rsub(mask01, 1)
      .mul(LowestFinite(options_.dtype))
      .view({mask01.size(0), 1, 1, mask01.size(1)});
}

EncoderOutputs Encoder::Run(const EncoderInputs& in, const LinearHook* hook,
                            Dropout* dropout) const {
  const EncoderConfig& c = config_;
  const at::Tensor ids = in.input_ids.to(options_.device, at::kLong);
  const int64_t batch = ids.size(0);
  const int64_t seq = ids.size(1);
  const at::Tensor types =
      in.token_type_ids.defined()
          ? in.token_type_ids.to(options_.device, at::kLong)
          : at::zeros_like(ids);

  at::Tensor positions;
  if (c.family == EncoderFamily::kRoberta) {
    // HF create_position_ids_from_input_ids: pads keep padding_idx, real
    // tokens count up from padding_idx + 1.
    const at::Tensor real = ids.ne(c.pad_token_id).to(at::kLong);
    positions = at::cumsum(real, 1).mul(real).add(c.pad_token_id);
  } else {
    positions = at::arange(seq, ids.options())
                    .add(c.position_offset)
                    .unsqueeze(0)
                    .expand({batch, seq});
  }
  const at::Tensor x = Embed(ids, types, positions);

  // Additive key mask [B, 1, 1, S]; none when nothing is padded (as HF).
  std::optional<at::Tensor> mask;
  at::Tensor mask01;
  if (in.attention_mask.defined()) {
    mask01 = in.attention_mask.to(options_.device, options_.dtype);
    if (!mask01.eq(1).all().item<bool>()) {
      mask = AdditiveMask(mask01);
    }
  }
  EncoderOutputs result;
  result.last_hidden_state = Layers(
      x, hook, dropout,
      [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
        return Attend(q, k, v, mask, dropout);
      });
  result.attention_mask = mask01;
  Pool(result);
  return result;
}

absl::StatusOr<EncoderOutputs> Encoder::ForwardPacked(
    const PackedInputs& in, const LinearHook* hook) const {
  return CallTorch("encoder forward (packed)", [&] {
    const int64_t rows = in.rows;
    const int64_t longest = in.longest;
    const int64_t hidden = config_.hidden_size;
    const bool padded = in.attention_mask.defined();
    // [tokens, H] <-> [rows, longest, H]. Unpadded, the packed layout is
    // the padded one and both are views.
    auto to_padded = [&](const at::Tensor& t) {
      if (!padded) return t.view({rows, longest, hidden});
      return at::zeros({rows * longest, hidden}, t.options())
          .index_copy_(0, in.padded_index, t)
          .view({rows, longest, hidden});
    };
    auto to_packed = [&](const at::Tensor& t) {
      const at::Tensor flat = t.reshape({rows * longest, hidden});
      return padded ? flat.index_select(0, in.padded_index) : flat;
    };
    std::optional<at::Tensor> mask;
    if (padded) mask = AdditiveMask(in.attention_mask.to(options_.dtype));

    const at::Tensor x =
        Embed(in.input_ids, in.token_type_ids, in.position_ids);
    EncoderOutputs result;
    result.last_hidden_state = to_padded(Layers(
        x, hook, /*dropout=*/nullptr,
        [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
          return to_packed(Attend(to_padded(q), to_padded(k), to_padded(v),
                                  mask, /*dropout=*/nullptr));
        }));
    result.attention_mask = in.attention_mask;
    Pool(result);
    return result;
  });
}

absl::StatusOr<EncoderOutputs> Encoder::Forward(const EncoderInputs& inputs,
                                                const LinearHook* hook,
                                                Dropout* dropout) const {
  // Validation itself calls LibTorch (min/max on caller tensors).
  absl::StatusOr<absl::Status> valid = CallTorch(
      "encoder input validation", [&] { return ValidateInputs(inputs); });
  if (!valid.ok()) return valid.status();
  DYLORA_RETURN_IF_ERROR(*valid);
  if (dropout != nullptr && dropout->generator.defined() &&
      dropout->generator.device().type() != options_.device.type()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dropout generator is on ", dropout->generator.device().str(),
        " but the encoder runs on ", options_.device.str()));
  }
  if (dropout != nullptr && !dropout->generator.defined()) {
    return absl::InvalidArgumentError("dropout without a generator");
  }
  return CallTorch("encoder forward",
                   [&] { return Run(inputs, hook, dropout); });
}

}  // namespace dylora
