#include "core/tokenizer/tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/model.h"
#include "core/tokenizer/normalizer.h"
#include "core/tokenizer/post_processor.h"
#include "core/tokenizer/pre_tokenizer.h"
#include "core/tokenizer/unicode.h"
#include "core/util/status_macros.h"

namespace dylora {

Tokenizer::Parts::Parts() = default;
Tokenizer::Parts::~Parts() = default;
Tokenizer::Parts::Parts(Parts&&) = default;
Tokenizer::Parts& Tokenizer::Parts::operator=(Parts&&) = default;

// Everything fixed at load time; shared by copies of a Tokenizer.
struct Tokenizer::State {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<TokenizerModel> model;
  std::unique_ptr<PostProcessor> post_processor;
  AddedVocabulary added;
  // Added tokens beyond the model vocabulary.
  absl::flat_hash_map<int32_t, std::string> extra_tokens;
  int32_t vocab_size = 0;
  PaddingParams default_padding;
};

absl::StatusOr<Tokenizer> Tokenizer::Create(Parts parts) {
  const std::string& src = parts.source;
  if (!parts.model) {
    return absl::InvalidArgumentError(absl::StrCat(src, ": no model"));
  }
  auto state = std::make_shared<State>();
  const Vocab& vocab = parts.model->vocab();
  state->vocab_size = vocab.size();
  absl::flat_hash_map<std::string, int32_t> extra_ids;
  for (const AddedToken& token : parts.added_tokens) {
    if (token.content.empty() || !unicode::DecodeUtf8(token.content).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(src, ": added token with id ", token.id,
                       " must be non-empty valid UTF-8"));
    }
    if (std::optional<int32_t> id = vocab.Find(token.content)) {
      if (*id != token.id) {
        return absl::InvalidArgumentError(
            absl::StrCat(src, ": added token \"", token.content, "\" has id ",
                         token.id, " but the model vocab gives it id ", *id));
      }
      continue;
    }
    if (token.id < vocab.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(src, ": added token \"", token.content, "\" has id ",
                       token.id, " which the model vocab already gives to \"",
                       vocab.Token(token.id), "\""));
    }
    if (state->extra_tokens.contains(token.id) ||
        extra_ids.contains(token.content)) {
      return absl::InvalidArgumentError(
          absl::StrCat(src, ": added token \"", token.content, "\" (id ",
                       token.id, ") is a duplicate"));
    }
    state->extra_tokens.emplace(token.id, token.content);
    extra_ids.emplace(token.content, token.id);
    state->vocab_size = std::max(state->vocab_size, token.id + 1);
  }
  state->normalizer = std::move(parts.normalizer);
  state->pre_tokenizer = std::move(parts.pre_tokenizer);
  state->model = std::move(parts.model);
  state->post_processor = std::move(parts.post_processor);
  state->added = AddedVocabulary(parts.added_tokens);

  Tokenizer tokenizer(state);
  if (state->post_processor) {
    for (const auto& [token, id] : state->post_processor->SpecialTokens()) {
      std::optional<int32_t> found = tokenizer.TokenToId(token);
      if (!found.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat(src, ": post_processor special token \"", token,
                         "\" is not in the vocab"));
      }
      if (*found != id) {
        return absl::InvalidArgumentError(absl::StrCat(
            src, ": post_processor special token \"", token, "\" has id ", id,
            " but the vocab gives it id ", *found));
      }
    }
  }
  for (absl::string_view pad : {"[PAD]", "<pad>"}) {
    if (std::optional<int32_t> id = tokenizer.TokenToId(pad)) {
      state->default_padding.pad_id = *id;
      state->default_padding.pad_token = std::string(pad);
      break;
    }
  }
  if (parts.padding.has_value()) {
    const PaddingParams& p = *parts.padding;
    if (p.pad_id < 0 || p.pad_id >= state->vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          src, ": padding.pad_id ", p.pad_id, " is outside the vocab"));
    }
    state->default_padding = p;
    state->default_padding.fixed_length.reset();
  }
  tokenizer.truncation_ = parts.truncation;
  tokenizer.padding_ = parts.padding;
  return tokenizer;
}

std::optional<int32_t> Tokenizer::TokenToId(absl::string_view token) const {
  if (std::optional<int32_t> id = state_->model->vocab().Find(token)) return id;
  return state_->added.Find(token);
}

std::optional<std::string> Tokenizer::IdToToken(int32_t id) const {
  const Vocab& vocab = state_->model->vocab();
  if (id >= 0 && id < vocab.size()) return vocab.Token(id);
  auto it = state_->extra_tokens.find(id);
  if (it == state_->extra_tokens.end()) return std::nullopt;
  return it->second;
}

int32_t Tokenizer::vocab_size() const { return state_->vocab_size; }

const PaddingParams& Tokenizer::default_padding() const {
  return state_->default_padding;
}

absl::StatusOr<Encoding> Tokenizer::EncodeSequence(absl::string_view text,
                                                   int32_t type_id) const {
  absl::StatusOr<std::u32string> decoded = unicode::DecodeUtf8(text);
  if (!decoded.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("input text: ", decoded.status().message()));
  }
  const State& s = *state_;
  std::vector<int32_t> ids;
  std::vector<std::u32string> pieces;
  for (Segment& raw : s.added.Split(*decoded, /*normalized=*/false)) {
    if (raw.id.has_value()) {
      ids.push_back(*raw.id);
      continue;
    }
    const std::u32string normalized =
        s.normalizer ? s.normalizer->Normalize(raw.text) : std::move(raw.text);
    for (Segment& seg : s.added.Split(normalized, /*normalized=*/true)) {
      if (seg.id.has_value()) {
        ids.push_back(*seg.id);
        continue;
      }
      pieces.clear();
      pieces.push_back(std::move(seg.text));
      if (s.pre_tokenizer) s.pre_tokenizer->PreTokenize(pieces);
      for (const std::u32string& piece : pieces) {
        if (piece.empty()) continue;
        DYLORA_RETURN_IF_ERROR(
            s.model->Tokenize(unicode::EncodeUtf8(piece), ids));
      }
    }
  }
  Encoding e;
  e.tokens.reserve(ids.size());
  for (int32_t id : ids) {
    std::optional<std::string> token = IdToToken(id);
    e.tokens.push_back(token.has_value() ? *std::move(token) : std::string());
  }
  e.type_ids.assign(ids.size(), type_id);
  e.attention_mask.assign(ids.size(), 1);
  e.special_tokens_mask.assign(ids.size(), 0);
  e.ids = std::move(ids);
  return e;
}

absl::StatusOr<Encoding> Tokenizer::EncodeUnpadded(
    absl::string_view first, const absl::string_view* second,
    bool add_special_tokens) const {
  DYLORA_ASSIGN_OR_RETURN(Encoding a, EncodeSequence(first, 0));
  std::optional<Encoding> b;
  if (second != nullptr) {
    DYLORA_ASSIGN_OR_RETURN(b, EncodeSequence(*second, 1));
  }
  const PostProcessor* processor =
      add_special_tokens ? state_->post_processor.get() : nullptr;
  if (truncation_.has_value()) {
    const int64_t added =
        processor ? static_cast<int64_t>(processor->AddedTokens(b.has_value()))
                  : 0;
    if (truncation_->max_length < added) {
      return absl::InvalidArgumentError(absl::StrCat(
          "truncation: max_length ", truncation_->max_length,
          " is smaller than the ", added, " special tokens added"));
    }
    DYLORA_RETURN_IF_ERROR(TruncateEncodings(a, b.has_value() ? &*b : nullptr,
                                             truncation_->max_length - added,
                                             *truncation_));
  }
  if (processor != nullptr) {
    return processor->Process(a, b.has_value() ? &*b : nullptr);
  }
  if (b.has_value()) a.Append(*b);
  return a;
}

namespace {

// A single encoding padded on its own, as `tokenizers` pads one input.
Encoding PadAlone(Encoding encoding,
                  const std::optional<PaddingParams>& padding) {
  if (!padding.has_value()) return encoding;
  std::vector<Encoding> one;
  one.push_back(std::move(encoding));
  PadEncodings(one, *padding);
  return std::move(one[0]);
}

}  // namespace

absl::StatusOr<Encoding> Tokenizer::Encode(absl::string_view text,
                                           bool add_special_tokens) const {
  DYLORA_ASSIGN_OR_RETURN(Encoding e,
                          EncodeUnpadded(text, nullptr, add_special_tokens));
  return PadAlone(std::move(e), padding_);
}

absl::StatusOr<Encoding> Tokenizer::EncodePair(absl::string_view first,
                                               absl::string_view second,
                                               bool add_special_tokens) const {
  DYLORA_ASSIGN_OR_RETURN(Encoding e,
                          EncodeUnpadded(first, &second, add_special_tokens));
  return PadAlone(std::move(e), padding_);
}

absl::StatusOr<std::vector<Encoding>> Tokenizer::EncodeBatch(
    absl::Span<const std::string> first, absl::Span<const std::string> second,
    bool add_special_tokens) const {
  if (!second.empty() && second.size() != first.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("EncodeBatch: ", first.size(), " first texts but ",
                     second.size(), " second texts"));
  }
  std::vector<Encoding> out;
  out.reserve(first.size());
  for (size_t i = 0; i < first.size(); ++i) {
    absl::string_view b = second.empty() ? absl::string_view() : second[i];
    absl::StatusOr<Encoding> e = EncodeUnpadded(
        first[i], second.empty() ? nullptr : &b, add_special_tokens);
    if (!e.ok()) {
      return absl::Status(
          e.status().code(),
          absl::StrCat("batch row ", i, ": ", e.status().message()));
    }
    out.push_back(*std::move(e));
  }
  if (padding_.has_value()) PadEncodings(out, *padding_);
  return out;
}

absl::StatusOr<BatchEncoding> Tokenizer::EncodeBatchRectangular(
    absl::Span<const std::string> first, absl::Span<const std::string> second,
    bool add_special_tokens) const {
  DYLORA_ASSIGN_OR_RETURN(std::vector<Encoding> rows,
                          EncodeBatch(first, second, add_special_tokens));
  PaddingParams fill = padding_.has_value() ? *padding_ : default_padding();
  fill.fixed_length.reset();  // pad what is still ragged to the longest
  PadEncodings(rows, fill);
  BatchEncoding batch;
  batch.batch_size = static_cast<int64_t>(rows.size());
  batch.seq_len = rows.empty() ? 0 : static_cast<int64_t>(rows[0].size());
  const size_t total = rows.size() * static_cast<size_t>(batch.seq_len);
  batch.input_ids.reserve(total);
  batch.token_type_ids.reserve(total);
  batch.attention_mask.reserve(total);
  for (const Encoding& e : rows) {
    batch.input_ids.insert(batch.input_ids.end(), e.ids.begin(), e.ids.end());
    batch.token_type_ids.insert(batch.token_type_ids.end(), e.type_ids.begin(),
                                e.type_ids.end());
    batch.attention_mask.insert(batch.attention_mask.end(),
                                e.attention_mask.begin(),
                                e.attention_mask.end());
  }
  return batch;
}

}  // namespace dylora
