#include "trainer/data/batches.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"

namespace dylora {

absl::StatusOr<TokenizedDataset> TokenizeDataset(const Dataset& dataset,
                                                 const Tokenizer& tokenizer,
                                                 int64_t max_seq_len) {
  if (max_seq_len < 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("max sequence length ", max_seq_len, " is too short"));
  }
  Tokenizer truncating = tokenizer;
  truncating.set_truncation(TruncationParams{.max_length = max_seq_len});
  truncating.set_padding(std::nullopt);
  // Measures what truncation cut, to report it.
  Tokenizer untruncated = tokenizer;
  untruncated.set_truncation(std::nullopt);
  untruncated.set_padding(std::nullopt);

  TokenizedDataset out;
  out.spec = dataset.spec;
  out.pad_id = tokenizer.default_padding().pad_id;
  out.examples.reserve(dataset.examples.size());
  for (const Example& example : dataset.examples) {
    auto encoding = example.text_b
                        ? truncating.EncodePair(example.text_a, *example.text_b)
                        : truncating.Encode(example.text_a);
    if (!encoding.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          dataset.path, ":", example.line, ": ", encoding.status().message()));
    }
    if (static_cast<int64_t>(encoding->size()) == max_seq_len) {
      auto full = example.text_b
                      ? untruncated.EncodePair(example.text_a, *example.text_b)
                      : untruncated.Encode(example.text_a);
      if (full.ok() && full->size() > encoding->size()) ++out.truncated;
    }
    out.examples.push_back(TokenizedExample{std::move(encoding->ids),
                                            std::move(encoding->type_ids),
                                            example.label});
  }
  return out;
}

Batch MakeBatch(const TokenizedDataset& data,
                absl::Span<const size_t> indices) {
  const int64_t batch = static_cast<int64_t>(indices.size());
  size_t longest = 0;
  for (size_t i : indices)
    longest = std::max(longest, data.examples[i].ids.size());
  const int64_t seq = static_cast<int64_t>(longest);
  at::Tensor ids = at::full({batch, seq}, data.pad_id, at::kLong);
  at::Tensor types = at::zeros({batch, seq}, at::kLong);
  at::Tensor mask = at::zeros({batch, seq}, at::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto types_a = types.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  std::vector<float> labels;
  labels.reserve(indices.size());
  for (int64_t row = 0; row < batch; ++row) {
    const TokenizedExample& example = data.examples[indices[row]];
    for (size_t t = 0; t < example.ids.size(); ++t) {
      ids_a[row][t] = example.ids[t];
      types_a[row][t] = example.type_ids[t];
      mask_a[row][t] = 1;
    }
    labels.push_back(example.label);
  }
  Batch out;
  out.inputs = EncoderInputs{ids, types, mask};
  at::Tensor label_tensor = at::tensor(labels, at::kFloat);
  out.labels = data.spec.regression ? label_tensor : label_tensor.to(at::kLong);
  return out;
}

namespace {

// Fisher-Yates over `items` with an unbiased index in [0, i) drawn without
// std::uniform_int_distribution, whose algorithm differs between standard
// libraries (the order must be the same everywhere for exact resume).
template <typename T>
void Shuffle(std::vector<T>& items, std::mt19937_64& rng) {
  for (size_t i = items.size(); i > 1; --i) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % i;
    uint64_t draw;
    do {
      draw = rng();
    } while (draw >= limit);
    std::swap(items[i - 1], items[draw % i]);
  }
}

}  // namespace

std::vector<size_t> EpochOrder(size_t n, uint64_t seed, int64_t epoch) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed * 1000003ULL + static_cast<uint64_t>(epoch));
  Shuffle(order, rng);
  return order;
}

std::vector<size_t> GroupByLength(const std::vector<size_t>& order,
                                  const TokenizedDataset& data,
                                  size_t batch_size, uint64_t seed,
                                  int64_t epoch) {
  if (batch_size == 0) return order;
  const size_t megabatch = batch_size * kBatchesPerMegabatch;
  std::mt19937_64 rng(seed * 1000003ULL + static_cast<uint64_t>(epoch) +
                      0x9e3779b97f4a7c15ULL);
  std::vector<size_t> grouped;
  grouped.reserve(order.size());
  for (size_t start = 0; start < order.size(); start += megabatch) {
    const size_t end = std::min(order.size(), start + megabatch);
    std::vector<size_t> chunk(order.begin() + start, order.begin() + end);
    std::stable_sort(chunk.begin(), chunk.end(), [&](size_t a, size_t b) {
      return data.examples[a].ids.size() > data.examples[b].ids.size();
    });
    // Batches of similar lengths, visited in random order so that no
    // long-to-short pattern repeats every megabatch.
    std::vector<size_t> batch_starts;
    for (size_t b = 0; b < chunk.size(); b += batch_size)
      batch_starts.push_back(b);
    Shuffle(batch_starts, rng);
    for (size_t b : batch_starts) {
      const size_t stop = std::min(chunk.size(), b + batch_size);
      grouped.insert(grouped.end(), chunk.begin() + b, chunk.begin() + stop);
    }
  }
  return grouped;
}

}  // namespace dylora
