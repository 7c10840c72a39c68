#include "core/tokenizer/bpe.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/tokenizer/json_util.h"
#include "core/util/status_macros.h"

namespace dylora {
namespace {

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) |
         static_cast<uint32_t>(b);
}

// "a b" -> (a, b); exactly one space.
absl::StatusOr<Bpe::Merge> SplitMerge(absl::string_view line, size_t number,
                                      absl::string_view context) {
  const size_t space = line.find(' ');
  if (space == absl::string_view::npos || space == 0 ||
      space + 1 == line.size() ||
      line.find(' ', space + 1) != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": merge ", number, " (\"", line,
                     "\") must be two tokens separated by one space"));
  }
  return Bpe::Merge(std::string(line.substr(0, space)),
                    std::string(line.substr(space + 1)));
}

absl::StatusOr<BpeOptions> OptionsFromJson(const nlohmann::json& model) {
  BpeOptions options;
  DYLORA_ASSIGN_OR_RETURN(options.unk_token, json_util::GetOptionalString(
                                                 model, "unk_token", "model"));
  DYLORA_ASSIGN_OR_RETURN(options.continuing_subword_prefix,
                          json_util::GetOptionalString(
                              model, "continuing_subword_prefix", "model"));
  DYLORA_ASSIGN_OR_RETURN(
      options.end_of_word_suffix,
      json_util::GetOptionalString(model, "end_of_word_suffix", "model"));
  DYLORA_ASSIGN_OR_RETURN(
      options.fuse_unk, json_util::GetBool(model, "fuse_unk", "model", false));
  DYLORA_ASSIGN_OR_RETURN(
      options.byte_fallback,
      json_util::GetBool(model, "byte_fallback", "model", false));
  DYLORA_ASSIGN_OR_RETURN(
      options.ignore_merges,
      json_util::GetBool(model, "ignore_merges", "model", false));
  auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null()) {
    if (!dropout->is_number() || dropout->get<double>() != 0.0) {
      return absl::UnimplementedError(
          "model: BPE dropout is a training-time option and is not supported");
    }
  }
  return options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Bpe>> Bpe::Create(
    Vocab vocab, const std::vector<Merge>& merges, const BpeOptions& options) {
  std::unique_ptr<Bpe> bpe(new Bpe(std::move(vocab), options));
  if (options.unk_token.has_value()) {
    bpe->unk_id_ = bpe->vocab_.Find(*options.unk_token);
    if (!bpe->unk_id_.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("BPE: unknown token \"",
                                                     *options.unk_token,
                                                     "\" is not in the vocab"));
    }
  }
  if (merges.size() >
      static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError("BPE: too many merges");
  }
  const size_t prefix_len = options.continuing_subword_prefix.has_value()
                                ? options.continuing_subword_prefix->size()
                                : 0;
  bpe->merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    std::optional<int32_t> a_id = bpe->vocab_.Find(a);
    std::optional<int32_t> b_id = bpe->vocab_.Find(b);
    if (!a_id.has_value() || !b_id.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "BPE: merge ", rank + 1, " (\"", a, " ", b, "\") refers to token \"",
          a_id.has_value() ? b : a, "\" which is not in the vocab"));
    }
    std::string merged = a;
    merged.append(b.size() >= prefix_len ? b.substr(prefix_len) : b);
    std::optional<int32_t> new_id = bpe->vocab_.Find(merged);
    if (!new_id.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "BPE: merge ", rank + 1, " (\"", a, " ", b, "\") produces \"", merged,
          "\" which is not in the vocab"));
    }
    // A repeated merge takes its last rank, as in `tokenizers`.
    bpe->merges_.insert_or_assign(
        PairKey(*a_id, *b_id), MergeInfo{static_cast<int32_t>(rank), *new_id});
  }
  return bpe;
}

absl::StatusOr<std::unique_ptr<Bpe>> Bpe::FromJson(
    const nlohmann::json& model) {
  DYLORA_ASSIGN_OR_RETURN(BpeOptions options, OptionsFromJson(model));
  DYLORA_ASSIGN_OR_RETURN(const nlohmann::json* vocab_json,
                          json_util::GetObject(model, "vocab", "model"));
  DYLORA_ASSIGN_OR_RETURN(Vocab vocab,
                          Vocab::FromJsonObject(*vocab_json, "model.vocab"));
  DYLORA_ASSIGN_OR_RETURN(const nlohmann::json* merges_json,
                          json_util::GetArray(model, "merges", "model"));
  std::vector<Merge> merges;
  merges.reserve(merges_json->size());
  for (size_t i = 0; i < merges_json->size(); ++i) {
    const nlohmann::json& m = (*merges_json)[i];
    if (m.is_string()) {
      DYLORA_ASSIGN_OR_RETURN(
          Merge merge,
          SplitMerge(m.get_ref<const std::string&>(), i + 1, "model.merges"));
      merges.push_back(std::move(merge));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() &&
               m[1].is_string()) {
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("model.merges: merge ", i + 1,
                       " must be a string \"a b\" or an array [\"a\", \"b\"]"));
    }
  }
  return Create(std::move(vocab), merges, options);
}

absl::StatusOr<std::unique_ptr<Bpe>> Bpe::FromVocabAndMerges(
    absl::string_view vocab_json, absl::string_view merges_txt,
    const BpeOptions& options) {
  DYLORA_ASSIGN_OR_RETURN(nlohmann::json json,
                          json_util::Parse(vocab_json, "vocab.json"));
  DYLORA_ASSIGN_OR_RETURN(Vocab vocab,
                          Vocab::FromJsonObject(json, "vocab.json"));
  std::vector<Merge> merges;
  size_t pos = 0;
  size_t line_number = 0;
  while (pos < merges_txt.size()) {
    size_t end = merges_txt.find('\n', pos);
    if (end == absl::string_view::npos) end = merges_txt.size();
    absl::string_view line = merges_txt.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.substr(0, 8) == "#version") continue;
    DYLORA_ASSIGN_OR_RETURN(Merge merge,
                            SplitMerge(line, line_number, "merges.txt"));
    merges.push_back(std::move(merge));
  }
  return Create(std::move(vocab), merges, options);
}

absl::Status Bpe::Tokenize(absl::string_view word,
                           std::vector<int32_t>& ids) const {
  if (options_.ignore_merges) {
    if (std::optional<int32_t> id = vocab_.Find(word)) {
      ids.push_back(*id);
      return absl::OkStatus();
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  bool pending_unk = false;
  std::string piece;
  size_t i = 0;
  while (i < word.size()) {
    size_t end = i + 1;
    while (end < word.size() &&
           (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80) {
      ++end;
    }
    const absl::string_view ch = word.substr(i, end - i);
    piece.clear();
    if (i > 0 && options_.continuing_subword_prefix.has_value()) {
      piece = *options_.continuing_subword_prefix;
    }
    piece.append(ch.data(), ch.size());
    if (end == word.size() && options_.end_of_word_suffix.has_value()) {
      piece.append(*options_.end_of_word_suffix);
    }
    i = end;
    if (std::optional<int32_t> id = vocab_.Find(piece)) {
      if (pending_unk) symbols.push_back(*unk_id_);
      pending_unk = false;
      symbols.push_back(*id);
      continue;
    }
    if (options_.byte_fallback) {
      std::vector<int32_t> bytes;
      for (char c : ch) {
        std::optional<int32_t> id = vocab_.Find(
            absl::StrFormat("<0x%02X>", static_cast<unsigned char>(c)));
        if (!id.has_value()) break;
        bytes.push_back(*id);
      }
      if (bytes.size() == ch.size()) {
        if (pending_unk) symbols.push_back(*unk_id_);
        pending_unk = false;
        symbols.insert(symbols.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (unk_id_.has_value()) {
      if (pending_unk && !options_.fuse_unk) symbols.push_back(*unk_id_);
      pending_unk = true;
    }
    // Without an unknown token, the character is dropped (as `tokenizers`).
  }
  if (pending_unk) symbols.push_back(*unk_id_);

  while (symbols.size() > 1) {
    int32_t best_rank = std::numeric_limits<int32_t>::max();
    size_t best_pos = 0;
    int32_t best_id = -1;
    for (size_t p = 0; p + 1 < symbols.size(); ++p) {
      auto it = merges_.find(PairKey(symbols[p], symbols[p + 1]));
      if (it != merges_.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank;
        best_pos = p;
        best_id = it->second.new_id;
      }
    }
    if (best_id < 0) break;
    symbols[best_pos] = best_id;
    symbols.erase(symbols.begin() + best_pos + 1);
  }
  ids.insert(ids.end(), symbols.begin(), symbols.end());
  return absl::OkStatus();
}

}  // namespace dylora
