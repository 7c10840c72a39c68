// Texts to classify, from command-line arguments, a file or stdin. One text
// per line; a TAB separates the two segments of a pair (MRPC, RTE, ...).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dylora::client {

struct TextItem {
  std::string text;
  std::string text_pair;  // empty: a single text

  bool operator==(const TextItem&) const = default;
};

// One item from "text" or "text<TAB>pair". INVALID_ARGUMENT (naming
// `where`, e.g. "input.txt:3") for an empty text or more than one TAB.
absl::StatusOr<TextItem> ParseTextItem(absl::string_view line,
                                       absl::string_view where);

// Every non-blank line of `content` (LF or CRLF line ends); `source` names
// the input in errors ("<source>:<line>: ...").
absl::StatusOr<std::vector<TextItem>> ParseTextLines(absl::string_view content,
                                                     absl::string_view source);

// The texts of `args` in order; an argument "-" stands for every line of
// `stdin_stream`. Then, when `file` is non-empty, the lines of that file
// ("-": stdin). INVALID_ARGUMENT when nothing is left.
absl::StatusOr<std::vector<TextItem>> ReadTexts(
    const std::vector<std::string>& args, const std::string& file,
    std::istream& stdin_stream);

}  // namespace dylora::client
