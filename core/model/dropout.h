// Training-time dropout with its own random generator, so that a training
// run is reproducible and resumes exactly (the generator's state goes into
// the checkpoint) and never touches LibTorch's global generator, which
// other threads may use. Evaluation and serving pass no Dropout at all.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/io/model_config.h"

namespace dylora {

struct Dropout {
  double hidden = 0;      // embeddings, attention output, FFN output
  double attention = 0;   // attention probabilities
  double classifier = 0;  // before the task head's projections
  // Draws every mask; its device type must match the encoder's.
  at::Generator generator;

  // The rates `config` declares (classifier_dropout absent: hidden's).
  static Dropout FromConfig(const EncoderConfig& config,
                            at::Generator generator);
};

// A generator of `device`'s type seeded with `seed`, independent of the
// global one.
absl::StatusOr<at::Generator> MakeGenerator(c10::Device device, uint64_t seed);

// x with each element zeroed with probability p and the rest scaled by
// 1 / (1 - p) (inverted dropout, as torch.nn.functional.dropout). p <= 0
// returns x itself. Throws on LibTorch errors (call inside CallTorch).
at::Tensor ApplyDropout(const at::Tensor& x, double p,
                        at::Generator& generator);

}  // namespace dylora
