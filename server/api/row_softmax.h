// Softmax over each row of a row-major [rows, width] float matrix (logits
// to class probabilities), shared by both protocols' responses.
#pragma once

#include <cstdint>
#include <vector>

namespace dylora::serving {

// Numerically stable (subtracts each row's max); accumulates in double.
std::vector<float> RowSoftmax(const std::vector<float>& logits, int64_t width);

}  // namespace dylora::serving
