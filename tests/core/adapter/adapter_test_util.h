// Shared helpers for the core/adapter tests: the tiny BERT fixture, its
// golden PEFT logits, and a fresh adapter with nonzero lora_B.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/adapter/adapter.h"
#include "core/model/encoder.h"
#include "core/model/heads.h"
#include "core/util/file_util.h"
#include "gtest/gtest.h"
#include "tests/test_paths.h"

namespace dylora::testing {

inline std::string AdapterFixtures() { return FixturesDir() + "/adapter"; }

// family: "bert" or "roberta".
inline std::unique_ptr<Encoder> LoadTiny(const std::string& family) {
  auto encoder = Encoder::Load(AdapterFixtures() + "/tiny-" + family);
  EXPECT_TRUE(encoder.ok()) << encoder.status();
  return encoder.ok() ? std::move(*encoder) : nullptr;
}
inline std::unique_ptr<Encoder> LoadTinyBert() { return LoadTiny("bert"); }

// A fresh adapter on `encoder` whose lora_B is random (a fresh one is zero,
// which would hide every rank-dependent bug).
inline std::unique_ptr<DyLoraAdapter> RandomAdapter(const Encoder& encoder,
                                                    AdapterConfig config = {},
                                                    uint64_t seed = 5) {
  auto head =
      ClassificationHead::Create(DefaultHeadKind(encoder.config().family),
                                 encoder.config().hidden_size, 3, seed);
  EXPECT_TRUE(head.ok()) << head.status();
  auto adapter = DyLoraAdapter::CreateFresh(encoder, std::move(config),
                                            head->named_tensors(), seed);
  EXPECT_TRUE(adapter.ok()) << adapter.status();
  if (!adapter.ok()) return nullptr;
  at::NoGradGuard no_grad;
  at::Generator gen = at::detail::createCPUGenerator(seed + 1);
  for (const auto& [id, f] : (*adapter)->factors()) {
    f.up.copy_(at::randn(f.up.sizes(), gen, at::kDouble).to(at::kFloat) * 0.2);
  }
  (*adapter)->SetRequiresGrad(false);
  return std::move(*adapter);
}

struct GoldenLogits {
  EncoderInputs inputs;
  std::map<int64_t, at::Tensor> logits;  // rank -> [batch, labels]
  int64_t peft_rank_saved = 4;           // the rank of peft<suffix>_r<b>/
};

inline at::Tensor JsonToTensor(const nlohmann::json& j, at::ScalarType type) {
  std::vector<double> flat;
  std::vector<int64_t> shape;
  const nlohmann::json* level = &j;
  while (level->is_array()) {
    shape.push_back(static_cast<int64_t>(level->size()));
    if (level->empty()) break;
    level = &(*level)[0];
  }
  std::function<void(const nlohmann::json&)> walk =
      [&](const nlohmann::json& v) {
        if (v.is_array()) {
          for (const auto& e : v) walk(e);
        } else {
          flat.push_back(v.get<double>());
        }
      };
  walk(j);
  return at::tensor(flat, at::kDouble).reshape(shape).to(type);
}

// suffix: "" (BERT) or "_roberta".
inline GoldenLogits LoadGoldenLogits(const std::string& suffix = "") {
  GoldenLogits g;
  auto text =
      ReadFileToString(AdapterFixtures() + "/peft_logits" + suffix + ".json");
  EXPECT_TRUE(text.ok());
  auto j = nlohmann::json::parse(*text, nullptr, false);
  EXPECT_FALSE(j.is_discarded());
  g.inputs.input_ids = JsonToTensor(j["input_ids"], at::kLong);
  g.inputs.attention_mask = JsonToTensor(j["attention_mask"], at::kLong);
  g.inputs.token_type_ids = JsonToTensor(j["token_type_ids"], at::kLong);
  g.peft_rank_saved = j.value("peft_rank_saved", 4);
  for (auto& [rank, value] : j["logits"].items()) {
    g.logits[std::stoll(rank)] = JsonToTensor(value, at::kFloat);
  }
  return g;
}

inline double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace dylora::testing
