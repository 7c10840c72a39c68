#include "server/api/row_softmax.h"

#include <algorithm>
#include <cmath>

namespace dylora::serving {

std::vector<float> RowSoftmax(const std::vector<float>& logits, int64_t width) {
  std::vector<float> probabilities(logits.size());
  if (width <= 0) return probabilities;
  for (size_t offset = 0; offset + width <= logits.size(); offset += width) {
    const float* in = logits.data() + offset;
    float* out = probabilities.data() + offset;
    const float max_logit = *std::max_element(in, in + width);
    double sum = 0;
    for (int64_t i = 0; i < width; ++i) sum += std::exp(double{in[i]} - max_logit);
    for (int64_t i = 0; i < width; ++i) {
      out[i] = static_cast<float>(std::exp(double{in[i]} - max_logit) / sum);
    }
  }
  return probabilities;
}

}  // namespace dylora::serving
