#include "nn/init.hpp"

#include <cmath>

#include "core/error.hpp"

namespace shears::nn::init {

namespace {

int64_t receptive_field(const Shape& shape) {
  int64_t r = 1;
  for (size_t d = 2; d < shape.size(); ++d) r *= shape[d];
  return r;
}

float kaiming_std(const Tensor& t, double a, Fan mode) {
  int64_t fan = mode == Fan::in ? fan_in(t.shape()) : fan_out(t.shape());
  SHEARS_CHECK(fan > 0, "kaiming init", "tensor of shape ", to_string(t.shape()), " has fan 0");
  return static_cast<float>(std::sqrt(2.0 / (1.0 + a * a)) / std::sqrt(static_cast<double>(fan)));
}

}  // namespace

int64_t fan_in(const Shape& shape) {
  SHEARS_CHECK(!shape.empty(), "fan_in", "needs at least 1 dimension");
  return shape.size() == 1 ? shape[0] : shape[1] * receptive_field(shape);
}

int64_t fan_out(const Shape& shape) {
  SHEARS_CHECK(!shape.empty(), "fan_out", "needs at least 1 dimension");
  return shape.size() == 1 ? shape[0] : shape[0] * receptive_field(shape);
}

void uniform_(Tensor& t, float low, float high, Generator& gen) {
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = low + (high - low) * gen.uniform();
}

void normal_(Tensor& t, float mean, float std, Generator& gen) {
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = mean + std * gen.normal();
}

void kaiming_uniform_(Tensor& t, Generator& gen, double a, Fan mode) {
  float bound = std::sqrt(3.f) * kaiming_std(t, a, mode);
  uniform_(t, -bound, bound, gen);
}

void kaiming_normal_(Tensor& t, Generator& gen, double a, Fan mode) { normal_(t, 0.f, kaiming_std(t, a, mode), gen); }

void default_linear_or_conv_(Tensor& weight, Tensor& bias, Generator& gen) {
  kaiming_uniform_(weight, gen, std::sqrt(5.0));
  if (!bias.defined()) return;
  int64_t fan = fan_in(weight.shape());
  float bound = fan > 0 ? 1.f / std::sqrt(static_cast<float>(fan)) : 0.f;
  uniform_(bias, -bound, bound, gen);
}

}  // namespace shears::nn::init
