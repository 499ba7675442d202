// Initialisers with torch.nn.init's formulas (1.13), drawing from one seeded shears::Generator (one
// --seed drives everything: docs/design.md#seeds-and-determinism). They fill a tensor in place,
// outside autograd.
//   fan_in  = size(1) · receptive field,  fan_out = size(0) · receptive field
//   (receptive field = product of the dims after the first two; a 1-D tensor has fan_in = size(0))
//   kaiming: gain = √(2 / (1 + a²)) (leaky_relu with slope a; nonlinearity='relu' is a = 0),
//            std = gain / √fan;  uniform bound = √3 · std
#pragma once
#include <cstdint>

#include "core/random.hpp"
#include "core/tensor.hpp"

namespace shears::nn::init {

enum class Fan { in, out };

int64_t fan_in(const Shape& shape);
int64_t fan_out(const Shape& shape);

void uniform_(Tensor& t, float low, float high, Generator& gen);
void normal_(Tensor& t, float mean, float std, Generator& gen);
void kaiming_uniform_(Tensor& t, Generator& gen, double a = 0.0, Fan mode = Fan::in);
void kaiming_normal_(Tensor& t, Generator& gen, double a = 0.0, Fan mode = Fan::in);

// PyTorch's default for Linear and Conv2d (reset_parameters): weight kaiming_uniform_ with
// a = √5, i.e. U(±1/√fan_in); bias U(±1/√fan_in) (bias may be undefined).
void default_linear_or_conv_(Tensor& weight, Tensor& bias, Generator& gen);

}  // namespace shears::nn::init
