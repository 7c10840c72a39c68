// Unicode helpers for the tokenizers, on UTF-32 strings (one char32_t per code
// point). Character classes follow Hugging Face `tokenizers` (which uses
// Rust's char methods), so that normalization and splitting match it exactly.
// All functions are pure and thread-safe. Backed by utf8proc.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dylora::unicode {

// Strict UTF-8 decoding: rejects truncated sequences, overlong forms,
// surrogates and code points above U+10FFFF with INVALID_ARGUMENT naming the
// byte offset.
absl::StatusOr<std::u32string> DecodeUtf8(absl::string_view text);
// Encodes valid code points (as produced by DecodeUtf8) back to UTF-8.
std::string EncodeUtf8(std::u32string_view text);
void AppendUtf8(char32_t c, std::string& out);

// Rust's char::is_whitespace (the Unicode White_Space property); the same set
// as \s of the Oniguruma regexes that `tokenizers` uses.
bool IsWhitespace(char32_t c);
// BertNormalizer's control test: categories Cc, Cf, Cs, Co, Cn except \t \n \r.
bool IsBertControl(char32_t c);
// BERT punctuation: ASCII 33-47, 58-64, 91-96, 123-126 or any P* category.
bool IsBertPunctuation(char32_t c);
// The CJK ideograph blocks that BertNormalizer surrounds with spaces.
bool IsChineseChar(char32_t c);
bool IsLetter(char32_t c);          // L*
bool IsNumber(char32_t c);          // N*
bool IsMarkNonspacing(char32_t c);  // Mn
bool IsAlphanumeric(char32_t c);    // Rust's char::is_alphanumeric

// Appends the full lowercase mapping of `c` (Rust's char::to_lowercase: the
// simple mapping, except U+0130 which becomes "i\u0307").
void AppendLowercase(char32_t c, std::u32string& out);

enum class NormalForm { kNfd, kNfc, kNfkd, kNfkc };
// Unicode normalization of a whole string (with canonical reordering).
std::u32string Normalize(std::u32string_view text, NormalForm form);

}  // namespace dylora::unicode
