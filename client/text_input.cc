#include "client/text_input.h"

#include <istream>
#include <iterator>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace dylora::client {
namespace {

// Texts larger than this are refused by the server anyway (16 KiB a text);
// the cap only keeps a wrong --file (a model checkpoint) from being slurped.
constexpr size_t kMaxInputBytes = size_t{256} << 20;

absl::StatusOr<std::vector<TextItem>> ReadStdin(std::istream& in) {
  std::string content((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
  return ParseTextLines(content, "stdin");
}

void Append(std::vector<TextItem>& items, std::vector<TextItem> more) {
  items.insert(items.end(), std::make_move_iterator(more.begin()),
               std::make_move_iterator(more.end()));
}

}  // namespace

absl::StatusOr<TextItem> ParseTextItem(absl::string_view line,
                                       absl::string_view where) {
  std::vector<absl::string_view> fields = absl::StrSplit(line, '\t');
  if (fields.size() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", fields.size() - 1,
                     " TABs; one TAB separates a text from its pair, none for "
                     "a single text"));
  }
  TextItem item;
  item.text = std::string(fields[0]);
  if (fields.size() == 2) item.text_pair = std::string(fields[1]);
  if (absl::StripAsciiWhitespace(item.text).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": the text is empty"));
  }
  if (fields.size() == 2 &&
      absl::StripAsciiWhitespace(item.text_pair).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": the text after the TAB (the pair) is empty"));
  }
  return item;
}

absl::StatusOr<std::vector<TextItem>> ParseTextLines(absl::string_view content,
                                                     absl::string_view source) {
  std::vector<TextItem> items;
  int64_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    ++line_number;
    absl::ConsumeSuffix(&line, "\r");
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    DYLORA_ASSIGN_OR_RETURN(
        TextItem item,
        ParseTextItem(line, absl::StrCat(source, ":", line_number)));
    items.push_back(std::move(item));
  }
  return items;
}

absl::StatusOr<std::vector<TextItem>> ReadTexts(
    const std::vector<std::string>& args, const std::string& file,
    std::istream& stdin_stream) {
  std::vector<TextItem> items;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-") {
      DYLORA_ASSIGN_OR_RETURN(std::vector<TextItem> lines,
                              ReadStdin(stdin_stream));
      Append(items, std::move(lines));
      continue;
    }
    DYLORA_ASSIGN_OR_RETURN(
        TextItem item,
        ParseTextItem(args[i], absl::StrCat("argument ", i + 1)));
    items.push_back(std::move(item));
  }
  if (file == "-") {
    DYLORA_ASSIGN_OR_RETURN(std::vector<TextItem> lines,
                            ReadStdin(stdin_stream));
    Append(items, std::move(lines));
  } else if (!file.empty()) {
    DYLORA_ASSIGN_OR_RETURN(std::string content,
                            ReadFileToString(file, kMaxInputBytes));
    DYLORA_ASSIGN_OR_RETURN(std::vector<TextItem> lines,
                            ParseTextLines(content, file));
    Append(items, std::move(lines));
  }
  if (items.empty()) {
    return absl::InvalidArgumentError(
        "no texts: give them as arguments, with --file FILE, or on stdin with "
        "'-'");
  }
  return items;
}

}  // namespace dylora::client
