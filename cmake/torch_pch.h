// The LibTorch headers most of our translation units need, parsed once.
// Keep this to the C++ frontend pieces we use; never <torch/torch.h>.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/normalization.h>
