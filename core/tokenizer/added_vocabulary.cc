#include "core/tokenizer/added_vocabulary.h"

#include <algorithm>

#include "core/tokenizer/unicode.h"

namespace dylora {
namespace {

bool IsWordChar(char32_t c) { return unicode::IsAlphanumeric(c) || c == U'_'; }

}  // namespace

AddedVocabulary::AddedVocabulary(const std::vector<AddedToken>& tokens)
    : tokens_(tokens) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    absl::StatusOr<std::u32string> text =
        unicode::DecodeUtf8(tokens_[i].content);
    if (!text.ok() || text->empty()) continue;  // validated by the loader
    auto& map = tokens_[i].normalized ? normalized_ : raw_;
    map[(*text)[0]].push_back(Pattern{*std::move(text), i});
  }
  for (auto* map : {&raw_, &normalized_}) {
    for (auto& [c, patterns] : *map) {
      std::stable_sort(patterns.begin(), patterns.end(),
                       [](const Pattern& a, const Pattern& b) {
                         return a.text.size() > b.text.size();
                       });
    }
  }
}

std::optional<int32_t> AddedVocabulary::Find(absl::string_view content) const {
  for (const AddedToken& t : tokens_) {
    if (t.content == content) return t.id;
  }
  return std::nullopt;
}

std::vector<Segment> AddedVocabulary::Split(std::u32string_view text,
                                            bool normalized) const {
  const auto& map = normalized ? normalized_ : raw_;
  std::vector<Segment> out;
  if (text.empty()) {
    out.push_back(Segment{});
    return out;
  }
  size_t done = 0;  // end of the last emitted segment
  size_t i = 0;
  while (i < text.size() && !map.empty()) {
    auto it = map.find(text[i]);
    const Pattern* match = nullptr;
    if (it != map.end()) {
      for (const Pattern& p : it->second) {
        if (text.substr(i, p.text.size()) == p.text) {
          match = &p;
          break;
        }
      }
    }
    if (match == nullptr) {
      ++i;
      continue;
    }
    const AddedToken& token = tokens_[match->token];
    size_t start = i;
    size_t stop = i + match->text.size();
    if (token.single_word) {
      const bool word_before = start > 0 && IsWordChar(text[start - 1]);
      const bool word_after = stop < text.size() && IsWordChar(text[stop]);
      if (word_before || word_after) {
        i = stop;  // matches do not overlap, even rejected ones
        continue;
      }
    }
    if (token.lstrip) {
      while (start > done && unicode::IsWhitespace(text[start - 1])) --start;
    }
    if (token.rstrip) {
      while (stop < text.size() && unicode::IsWhitespace(text[stop])) ++stop;
    }
    if (start > done) {
      out.push_back(Segment{std::nullopt,
                            std::u32string(text.substr(done, start - done))});
    }
    out.push_back(Segment{token.id, {}});
    done = stop;
    i = stop;
  }
  if (done < text.size()) {
    out.push_back(Segment{std::nullopt, std::u32string(text.substr(done))});
  }
  return out;
}

}  // namespace dylora
