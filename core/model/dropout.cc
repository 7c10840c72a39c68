#include "core/model/dropout.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include "core/util/torch_status.h"

namespace dylora {

Dropout Dropout::FromConfig(const EncoderConfig& config,
                            at::Generator generator) {
  Dropout d;
  d.hidden = config.hidden_dropout_prob;
  d.attention = config.attention_probs_dropout_prob;
  d.classifier = config.classifier_dropout.value_or(config.hidden_dropout_prob);
  d.generator = std::move(generator);
  return d;
}

absl::StatusOr<at::Generator> MakeGenerator(c10::Device device, uint64_t seed) {
  return CallTorch("dropout generator", [&] {
    if (device.is_cpu()) return at::make_generator<at::CPUGeneratorImpl>(seed);
    // Accelerators: a private clone of the device's default generator.
    at::Generator g = at::globalContext().defaultGenerator(device).clone();
    g.set_current_seed(seed);
    return g;
  });
}

at::Tensor ApplyDropout(const at::Tensor& x, double p,
                        at::Generator& generator) {
  if (p <= 0) return x;
  const at::Tensor keep = at::empty_like(x).bernoulli_(1.0 - p, generator);
  return x.mul(keep).div_(1.0 - p);
}

}  // namespace dylora
