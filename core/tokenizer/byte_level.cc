#include "core/tokenizer/byte_level.h"

#include <array>

#include "core/tokenizer/unicode.h"

namespace dylora::byte_level {
namespace {

std::array<char32_t, 256> MakeByteMap() {
  std::array<char32_t, 256> map{};
  std::array<bool, 256> printable{};
  for (int b = '!'; b <= '~'; ++b) printable[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    map[b] = printable[b] ? static_cast<char32_t>(b) : next++;
  }
  return map;
}

enum class Class { kSpace, kLetter, kNumber, kOther };

Class Classify(char32_t c) {
  if (unicode::IsWhitespace(c)) return Class::kSpace;
  if (unicode::IsLetter(c)) return Class::kLetter;
  if (unicode::IsNumber(c)) return Class::kNumber;
  return Class::kOther;
}

// Length of the contraction ('s 't 're 've 'm 'll 'd) at `i`, or 0.
size_t Contraction(std::u32string_view t, size_t i) {
  if (t[i] != U'\'' || i + 1 >= t.size()) return 0;
  const char32_t a = t[i + 1];
  if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
  if (i + 2 < t.size()) {
    const char32_t b = t[i + 2];
    if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') ||
        (a == U'l' && b == U'l')) {
      return 3;
    }
  }
  return 0;
}

// Length of " ?X+" at `i` for class X, or 0.
size_t OptionalSpaceRun(std::u32string_view t, size_t i, Class cls) {
  size_t j = i;
  if (t[j] == U' ') ++j;
  size_t k = j;
  while (k < t.size() && Classify(t[k]) == cls) ++k;
  return k > j ? k - i : 0;
}

}  // namespace

char32_t ByteToChar(unsigned char b) {
  static const std::array<char32_t, 256> kMap = MakeByteMap();
  return kMap[b];
}

std::vector<std::u32string> SplitGpt2(std::u32string_view t) {
  std::vector<std::u32string> out;
  size_t i = 0;
  while (i < t.size()) {
    size_t len = Contraction(t, i);
    if (len == 0) len = OptionalSpaceRun(t, i, Class::kLetter);
    if (len == 0) len = OptionalSpaceRun(t, i, Class::kNumber);
    if (len == 0) len = OptionalSpaceRun(t, i, Class::kOther);
    if (len == 0) {
      // Whitespace: \s+(?!\S) leaves the last space of a run that is
      // followed by a non-space for the next match; \s+ takes a lone one.
      size_t end = i;
      while (end < t.size() && unicode::IsWhitespace(t[end])) ++end;
      if (end < t.size() && end - i >= 2) --end;
      len = end - i;
    }
    out.emplace_back(t.substr(i, len));
    i += len;
  }
  return out;
}

std::u32string ToByteLevel(std::u32string_view text) {
  const std::string utf8 = unicode::EncodeUtf8(text);
  std::u32string out;
  out.reserve(utf8.size());
  for (char c : utf8) out.push_back(ByteToChar(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace dylora::byte_level
