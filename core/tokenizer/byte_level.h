// GPT-2's byte-level machinery: the reversible byte -> printable code point
// map and the GPT-2 split regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// implemented by hand (Oniguruma semantics: alternatives in order, greedy).
// Pure functions, thread-safe.
#pragma once

#include <string>
#include <vector>

namespace dylora::byte_level {

// The code point that byte `b` maps to (GPT-2's bytes_to_unicode).
char32_t ByteToChar(unsigned char b);

// Splits `text` into the regex's consecutive matches (which cover all of it).
std::vector<std::u32string> SplitGpt2(std::u32string_view text);

// Maps the UTF-8 bytes of `text` to their byte-level characters.
std::u32string ToByteLevel(std::u32string_view text);

}  // namespace dylora::byte_level
