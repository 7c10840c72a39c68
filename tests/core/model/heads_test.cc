#include "core/model/heads.h"

#include <ATen/ATen.h>

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dylora {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(ClassificationHeadTest, LayoutUsesHuggingFaceNames) {
  auto bert = ClassificationHead::Create(HeadKind::kBertPooled, 8, 3, 1);
  ASSERT_TRUE(bert.ok()) << bert.status();
  ASSERT_EQ(bert->named_tensors().size(), 2u);
  EXPECT_EQ(bert->named_tensors()[0].first, "classifier.weight");
  EXPECT_EQ(bert->named_tensors()[0].second.sizes(), (at::IntArrayRef{3, 8}));
  EXPECT_EQ(bert->named_tensors()[1].first, "classifier.bias");

  auto roberta =
      ClassificationHead::Create(HeadKind::kRobertaClassification, 8, 1, 1);
  ASSERT_TRUE(roberta.ok()) << roberta.status();
  std::vector<std::string> names;
  for (const auto& [name, t] : roberta->named_tensors()) names.push_back(name);
  EXPECT_THAT(names, ::testing::ElementsAre("classifier.dense.weight",
                                            "classifier.dense.bias",
                                            "classifier.out_proj.weight",
                                            "classifier.out_proj.bias"));
  EXPECT_EQ(roberta->named_tensors()[2].second.sizes(),
            (at::IntArrayRef{1, 8}));
  EXPECT_EQ(DefaultHeadKind(EncoderFamily::kRoberta),
            HeadKind::kRobertaClassification);
  EXPECT_EQ(DefaultHeadKind(EncoderFamily::kBert), HeadKind::kBertPooled);
}

TEST(ClassificationHeadTest, InitIsSeededNormalWithZeroBias) {
  auto a =
      ClassificationHead::Create(HeadKind::kRobertaClassification, 64, 3, 7);
  auto b =
      ClassificationHead::Create(HeadKind::kRobertaClassification, 64, 3, 7);
  auto c =
      ClassificationHead::Create(HeadKind::kRobertaClassification, 64, 3, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  const at::Tensor w = a->named_tensors()[0].second;
  EXPECT_TRUE(at::equal(w, b->named_tensors()[0].second));
  EXPECT_FALSE(at::equal(w, c->named_tensors()[0].second));
  const double std = w.std().item<double>();
  EXPECT_GT(std, 0.017);
  EXPECT_LT(std, 0.023);
  EXPECT_LT(std::abs(w.mean().item<double>()), 0.003);
  EXPECT_EQ(a->named_tensors()[1].second.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(a->named_tensors()[3].second.abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(w.requires_grad());
  a->SetRequiresGrad(true);
  for (const auto& [name, t] : a->named_tensors())
    EXPECT_TRUE(t.requires_grad()) << name;
}

TEST(ClassificationHeadTest, RejectsBadSizes) {
  EXPECT_FALSE(ClassificationHead::Create(HeadKind::kBertPooled, 8, 0, 1).ok());
  EXPECT_FALSE(ClassificationHead::Create(HeadKind::kBertPooled, 0, 2, 1).ok());
  EXPECT_FALSE(
      ClassificationHead::Create(HeadKind::kBertPooled, 8, 2, 1, {}, -1).ok());
}

TEST(ClassificationHeadTest, BertHeadIsLinearOnPooler) {
  std::map<std::string, at::Tensor> t = {
      {"classifier.weight", at::tensor({1.0f, 2.0f, 0.0f, -1.0f}).view({2, 2})},
      {"classifier.bias", at::tensor({0.5f, -0.5f})}};
  auto head = ClassificationHead::FromTensors(HeadKind::kBertPooled, 2, 2, t);
  ASSERT_TRUE(head.ok()) << head.status();
  EncoderOutputs out{at::zeros({1, 3, 2}),
                     at::tensor({3.0f, 4.0f}).view({1, 2})};
  auto logits = head->Forward(out);
  ASSERT_TRUE(logits.ok()) << logits.status();
  EXPECT_TRUE(at::allclose(*logits, at::tensor({11.5f, -4.5f}).view({1, 2})));

  out.pooler_output = at::Tensor();
  EXPECT_EQ(head->Forward(out).status().code(),
            absl::StatusCode::kFailedPrecondition);
  out.pooler_output = at::zeros({1, 5});
  EXPECT_EQ(head->Forward(out).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ClassificationHeadTest, RobertaHeadReadsTokenZero) {
  auto head =
      ClassificationHead::Create(HeadKind::kRobertaClassification, 4, 2, 3);
  ASSERT_TRUE(head.ok());
  at::Tensor h = at::randn({2, 5, 4});
  auto logits = head->Forward({h, {}});
  ASSERT_TRUE(logits.ok()) << logits.status();
  EXPECT_EQ(logits->sizes(), (at::IntArrayRef{2, 2}));
  at::Tensor h2 = h.clone();
  h2.slice(1, 1) += 1.0;  // changing other tokens changes nothing
  auto logits2 = head->Forward({h2, {}});
  ASSERT_TRUE(logits2.ok());
  EXPECT_TRUE(at::equal(*logits, *logits2));
  EXPECT_EQ(head->Forward({at::randn({2, 5, 3}), {}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ClassificationHeadTest, PooledHeadsReadRealTokensOnly) {
  // classifier = identity, so the logits are the pooled vector itself.
  std::map<std::string, at::Tensor> t = {{"classifier.weight", at::eye(2)},
                                         {"classifier.bias", at::zeros({2})}};
  at::Tensor h = at::arange(12, at::kFloat).view({2, 3, 2});
  at::Tensor mask = at::tensor({1, 1, 0, 1, 1, 1}, at::kLong).view({2, 3});
  EncoderOutputs out{h, at::Tensor(), mask};
  for (HeadKind kind : {HeadKind::kMeanPooled, HeadKind::kClsPooled,
                        HeadKind::kMaxPooled, HeadKind::kMeanSqrtLenPooled}) {
    auto head = ClassificationHead::FromTensors(kind, 2, 2, t);
    ASSERT_TRUE(head.ok()) << head.status();
    auto logits = head->Forward(out);
    ASSERT_TRUE(logits.ok()) << logits.status();
    const PoolingMode mode = kind == HeadKind::kMeanPooled  ? PoolingMode::kMean
                             : kind == HeadKind::kClsPooled ? PoolingMode::kCls
                             : kind == HeadKind::kMaxPooled
                                 ? PoolingMode::kMax
                                 : PoolingMode::kMeanSqrtLen;
    EXPECT_TRUE(at::allclose(*logits, *Pool(mode, h, mask)))
        << HeadKindName(kind);
  }
  // Mean: row 0 averages its two real tokens, not the padded third.
  auto mean = ClassificationHead::FromTensors(HeadKind::kMeanPooled, 2, 2, t);
  EXPECT_TRUE(at::allclose(*mean->Forward(out),
                           at::tensor({1.0f, 2.0f, 8.0f, 9.0f}).view({2, 2})));
  // Without a mask every position is real.
  EXPECT_TRUE(at::allclose(*mean->Forward({h, at::Tensor()}), h.mean(1)));
  // No pooler needed, unlike kBertPooled.
  EXPECT_TRUE(mean->Forward({h, at::Tensor(), mask}).ok());
}

TEST(ClassificationHeadTest, HeadKindNamesRoundTrip) {
  for (HeadKind kind : {HeadKind::kBertPooled, HeadKind::kRobertaClassification,
                        HeadKind::kMeanPooled, HeadKind::kClsPooled,
                        HeadKind::kMaxPooled, HeadKind::kMeanSqrtLenPooled}) {
    auto parsed = ParseHeadKind(HeadKindName(kind));
    ASSERT_TRUE(parsed.ok()) << HeadKindName(kind);
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_EQ(PooledHeadKind(PoolingMode::kMean), HeadKind::kMeanPooled);
  EXPECT_EQ(ParseHeadKind("weighted").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ClassificationHeadTest, ClassifierDropoutOnlyWhenGiven) {
  auto head = ClassificationHead::Create(HeadKind::kMeanPooled, 16, 2, 3);
  ASSERT_TRUE(head.ok());
  at::Tensor h = at::randn({4, 3, 16});
  EncoderOutputs out{h, at::Tensor()};
  auto eval1 = head->Forward(out);
  auto eval2 = head->Forward(out);
  auto generator = MakeGenerator(c10::Device(c10::kCPU), 9);
  ASSERT_TRUE(generator.ok());
  Dropout dropout;
  dropout.classifier = 0.5;
  dropout.generator = *generator;
  auto train = head->Forward(out, &dropout);
  ASSERT_TRUE(eval1.ok() && eval2.ok() && train.ok());
  EXPECT_TRUE(at::equal(*eval1, *eval2));
  EXPECT_FALSE(at::allclose(*eval1, *train));
}

TEST(ClassificationHeadTest, FromTensorsListsEveryProblem) {
  std::map<std::string, at::Tensor> t = {
      {"classifier.dense.weight", at::zeros({4, 4})},
      {"classifier.dense.bias", at::zeros({5})},
      {"classifier.out_proj.weight", at::zeros({2, 4})},
      {"classifier.extra", at::zeros({1})}};
  auto head = ClassificationHead::FromTensors(HeadKind::kRobertaClassification,
                                              4, 2, t);
  ASSERT_FALSE(head.ok());
  EXPECT_EQ(head.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(head.status().message()),
      AllOf(HasSubstr("missing classifier.out_proj.bias (expected [2])"),
            HasSubstr("classifier.dense.bias: expected [4], found [5]"),
            HasSubstr("unexpected classifier.extra")));
}

TEST(ClassificationHeadTest, FromTensorsCopies) {
  at::Tensor w = at::ones({1, 2});
  std::map<std::string, at::Tensor> t = {{"classifier.weight", w},
                                         {"classifier.bias", at::zeros({1})}};
  auto head = ClassificationHead::FromTensors(HeadKind::kBertPooled, 2, 1, t,
                                              {.dtype = c10::kDouble});
  ASSERT_TRUE(head.ok());
  w.fill_(5);
  EXPECT_EQ(head->named_tensors()[0].second.sum().item<double>(), 2.0);
  EXPECT_EQ(head->named_tensors()[0].second.scalar_type(), at::kDouble);
}

}  // namespace
}  // namespace dylora
