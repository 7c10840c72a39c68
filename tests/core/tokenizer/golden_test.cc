// Golden tests against Hugging Face `tokenizers`: the expectations in
// tests/fixtures/tokenizer were produced by make_tokenizer_fixtures.py from
// real GLUE rows (re-read here from the shared data by file and line), a
// hand-written set of hard strings, and truncation/padding cases. Every
// record must match exactly; the counts compared are printed.
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/file_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_paths.h"

namespace dylora {
namespace {

using nlohmann::json;

std::vector<json> ReadJsonl(const std::string& path) {
  std::vector<json> out;
  absl::StatusOr<std::string> text = ReadFileToString(path);
  EXPECT_TRUE(text.ok()) << text.status();
  if (!text.ok()) return out;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (line.empty()) continue;
    json j = json::parse(line.begin(), line.end(), nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << path;
    out.push_back(std::move(j));
  }
  return out;
}

// Lines of a GLUE file, cached.
const std::vector<std::string>& DataLines(const std::string& file) {
  static auto* cache =
      new absl::flat_hash_map<std::string, std::vector<std::string>>();
  auto it = cache->find(file);
  if (it != cache->end()) return it->second;
  absl::StatusOr<std::string> text =
      ReadFileToString(testing::DataDir() + "/" + file);
  EXPECT_TRUE(text.ok()) << text.status();
  std::vector<std::string> lines =
      text.ok() ? absl::StrSplit(*text, '\n') : std::vector<std::string>();
  return cache->emplace(file, std::move(lines)).first->second;
}

std::vector<std::string> Texts(const std::string& file, const json& columns,
                               int64_t line) {
  const std::vector<std::string>& lines = DataLines(file);
  std::vector<std::string> fields =
      absl::StrSplit(lines.at(static_cast<size_t>(line)), '\t');
  std::vector<std::string> out;
  for (const json& c : columns) out.push_back(fields.at(c.get<size_t>()));
  return out;
}

std::string TypeString(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t t : v) absl::StrAppend(&s, t);
  return s;
}

struct Tally {
  int compared = 0;
  int mismatched = 0;
  // Counts a failed encode as a mismatch.
  bool Ok(const absl::StatusOr<Encoding>& e, const std::string& what) {
    if (e.ok()) return true;
    ADD_FAILURE() << what << ": " << e.status();
    ++compared, ++mismatched;
    return false;
  }
  void Check(const Encoding& e, const json& ids, const std::string& types,
             const std::string& what) {
    ++compared;
    const std::vector<int32_t> expected = ids.get<std::vector<int32_t>>();
    if (e.ids != expected || TypeString(e.type_ids) != types) {
      if (++mismatched <= 5) {
        ADD_FAILURE() << what << "\n  got      " << json(e.ids).dump() << " "
                      << TypeString(e.type_ids) << "\n  expected " << ids.dump()
                      << " " << types;
      }
    }
  }
};

absl::StatusOr<Encoding> EncodeTexts(const Tokenizer& tok,
                                     const std::vector<std::string>& t) {
  return t.size() == 2 ? tok.EncodePair(t[0], t[1]) : tok.Encode(t[0]);
}

PaddingParams PaddingFromCase(const json& p) {
  PaddingParams params;
  params.pad_id = p["pad_id"].get<int32_t>();
  params.pad_token = p["pad_token"].get<std::string>();
  if (p.contains("length")) params.fixed_length = p["length"].get<int64_t>();
  if (p.contains("pad_to_multiple_of")) {
    params.pad_to_multiple_of = p["pad_to_multiple_of"].get<int64_t>();
  }
  if (p.value("direction", "right") == "left") {
    params.direction = Direction::kLeft;
  }
  return params;
}

void CheckBatchCase(const Tokenizer& tok, const json& c, Tally& tally) {
  std::vector<std::string> first, second;
  for (const json& line : c["lines"]) {
    std::vector<std::string> t = Texts(c["file"], c["columns"], line);
    first.push_back(t[0]);
    if (t.size() == 2) second.push_back(t[1]);
  }
  absl::StatusOr<std::vector<Encoding>> rows = tok.EncodeBatch(first, second);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), c["ids"].size());
  for (size_t r = 0; r < rows->size(); ++r) {
    const std::string what =
        absl::StrCat(c["kind"].get<std::string>(), " ",
                     c["file"].get<std::string>(), " row ", r);
    tally.Check((*rows)[r], c["ids"][r], c["t"][r], what);
    EXPECT_EQ(TypeString((*rows)[r].attention_mask), c["mask"][r]) << what;
  }
  // The rectangular form holds the same rows.
  absl::StatusOr<BatchEncoding> batch =
      tok.EncodeBatchRectangular(first, second);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->batch_size, static_cast<int64_t>(rows->size()));
  const size_t seq = static_cast<size_t>(batch->seq_len);
  for (size_t r = 0; r < rows->size(); ++r) {
    const std::vector<int32_t>& ids = (*rows)[r].ids;
    ASSERT_EQ(ids.size(), seq);
    for (size_t k = 0; k < seq; ++k) {
      EXPECT_EQ(batch->input_ids[r * seq + k], ids[k]);
      EXPECT_EQ(batch->attention_mask[r * seq + k],
                (*rows)[r].attention_mask[k]);
    }
  }
}

// Compares `tok` (truncation and padding off) with the fixtures of `name`.
Tally RunGolden(Tokenizer tok, const std::string& name) {
  tok.set_truncation(std::nullopt);
  tok.set_padding(std::nullopt);
  const std::string dir = testing::FixturesDir() + "/tokenizer/";
  Tally tally;
  for (const char* source : {"sst2", "cola", "mrpc", "rte", "stsb"}) {
    std::vector<json> records =
        ReadJsonl(absl::StrCat(dir, name, "_", source, ".jsonl"));
    if (records.empty()) continue;
    const std::string file = records[0]["file"];
    const json& columns = records[0]["columns"];
    for (size_t i = 1; i < records.size(); ++i) {
      const json& r = records[i];
      const int64_t line = r["l"].get<int64_t>();
      absl::StatusOr<Encoding> e = EncodeTexts(tok, Texts(file, columns, line));
      if (!tally.Ok(e, absl::StrCat(file, ":", line))) continue;
      tally.Check(*e, r["ids"], r["t"], absl::StrCat(file, " line ", line));
    }
  }
  for (const json& r : ReadJsonl(dir + name + "_tricky.jsonl")) {
    std::vector<std::string> texts = r["text"].get<std::vector<std::string>>();
    absl::StatusOr<Encoding> e = EncodeTexts(tok, texts);
    if (!tally.Ok(e, r["text"].dump())) continue;
    tally.Check(*e, r["ids"], r["t"],
                absl::StrCat("tricky ", r["text"].dump()));
  }
  for (const json& c : ReadJsonl(dir + name + "_cases.jsonl")) {
    const std::string kind = c["kind"];
    if (kind == "trunc32") {
      TruncationParams trunc;
      trunc.max_length = 32;
      tok.set_truncation(trunc);
      absl::StatusOr<Encoding> e =
          EncodeTexts(tok, Texts(c["file"], c["columns"], c["l"]));
      if (!tally.Ok(e, "trunc32")) continue;
      tally.Check(*e, c["ids"], c["t"],
                  absl::StrCat("trunc32 ", c["file"].get<std::string>(), ":",
                               c["l"].get<int64_t>()));
    } else {
      if (c["truncation"].is_null()) {
        tok.set_truncation(std::nullopt);
      } else {
        TruncationParams trunc;
        trunc.max_length = c["truncation"].get<int64_t>();
        tok.set_truncation(trunc);
      }
      tok.set_padding(PaddingFromCase(c["padding"]));
      CheckBatchCase(tok, c, tally);
    }
    tok.set_truncation(std::nullopt);
    tok.set_padding(std::nullopt);
  }
  return tally;
}

void Report(const std::string& what, const Tally& tally) {
  std::cout << "[golden] " << what << ": " << tally.compared - tally.mismatched
            << "/" << tally.compared << " encodings equal to Hugging Face ("
            << (tally.compared ? 100.0 * (tally.compared - tally.mismatched) /
                                     tally.compared
                               : 0.0)
            << "%)" << std::endl;
  EXPECT_GE(tally.compared, 2000);
  EXPECT_EQ(tally.mismatched, 0);
}

TEST(GoldenTest, MiniLmTokenizerJson) {
  absl::StatusOr<Tokenizer> tok =
      Tokenizer::FromTokenizerJsonFile(testing::ModelDir() + "/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  Report("MiniLM tokenizer.json", RunGolden(*tok, "minilm"));
}

TEST(GoldenTest, MiniLmVocabTxt) {
  absl::StatusOr<Tokenizer> tok = Tokenizer::FromBertVocabFile(
      testing::ModelDir() + "/vocab.txt", /*lower_case=*/true);
  ASSERT_TRUE(tok.ok()) << tok.status();
  Report("MiniLM vocab.txt", RunGolden(*tok, "minilm"));
}

TEST(GoldenTest, RobertaTokenizerJson) {
  absl::StatusOr<Tokenizer> tok = Tokenizer::FromTokenizerJsonFile(
      testing::FixturesDir() + "/tokenizer/roberta_bpe/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  Report("RoBERTa BPE tokenizer.json", RunGolden(*tok, "roberta"));
}

TEST(GoldenTest, RobertaVocabAndMerges) {
  const std::string dir = testing::FixturesDir() + "/tokenizer/roberta_bpe/";
  absl::StatusOr<Tokenizer> tok =
      Tokenizer::FromRobertaFiles(dir + "vocab.json", dir + "merges.txt");
  ASSERT_TRUE(tok.ok()) << tok.status();
  Report("RoBERTa BPE vocab.json+merges.txt", RunGolden(*tok, "roberta"));
}

// The MiniLM file's own truncation (128) and padding (Fixed 128) sections.
TEST(GoldenTest, MiniLmFileDefaults) {
  absl::StatusOr<Tokenizer> tok =
      Tokenizer::FromTokenizerJsonFile(testing::ModelDir() + "/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  ASSERT_TRUE(tok->truncation().has_value());
  EXPECT_EQ(tok->truncation()->max_length, 128);
  ASSERT_TRUE(tok->padding().has_value());
  EXPECT_EQ(tok->padding()->fixed_length, 128);
  Tally tally;
  for (const json& c :
       ReadJsonl(testing::FixturesDir() + "/tokenizer/minilm_defaults.jsonl")) {
    CheckBatchCase(*tok, c, tally);
    absl::StatusOr<Encoding> e = tok->Encode(c["long_text"].get<std::string>());
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_EQ(e->ids, c["long_ids"].get<std::vector<int32_t>>());
  }
  EXPECT_GT(tally.compared, 0);
  EXPECT_EQ(tally.mismatched, 0);
}

}  // namespace
}  // namespace dylora
