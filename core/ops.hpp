// The differentiable ops. Each lives in core/ops/<family>.cpp with its forward kernel, its
// backward and a plain reference kernel side by side, and registers its name with
// SHEARS_REGISTER_OP so the gradient-check suite can prove it covers every op.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.hpp"

namespace shears {

class Generator;

// Elementwise with NumPy/PyTorch broadcasting.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, float b);
Tensor mul(const Tensor& a, float b);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor pow(const Tensor& x, float exponent);
Tensor abs(const Tensor& x);
Tensor clamp(const Tensor& x, float min, float max);
Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);
Tensor leaky_relu(const Tensor& x, float negative_slope = 0.01f);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor dropout(const Tensor& x, float p, bool training, Generator& gen);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& x) { return neg(x); }

// Reductions. Negative dims count from the end; an empty dim list reduces nothing.
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor max(const Tensor& x);                                     // the largest element
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);  // values along dim
// Sums `x` down to `shape` over broadcast dimensions (the backward of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);

// Linear algebra (OpenBLAS sgemm). matmul: (M,K)x(K,N), or batched (B,M,K)x(B,K,N).
Tensor matmul(const Tensor& a, const Tensor& b);
// y = x Wᵀ + b with x (N, in), weight (out, in), bias (out) or undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

struct Conv2dOptions {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
};
// x (N, C_in, H, W), weight (C_out, C_in/groups, kH, kW), bias (C_out) or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt = {});

class SparseWeight;
// linear and conv2d (groups 1) over the kept entries of `sparse` (core/sparse.hpp, built from the
// weight): values from `weight` when defined (its gradient is zero off the kept entries), else
// the form's own (inference without the dense copy).
Tensor sparse_linear(const Tensor& x, const Tensor& weight, const std::shared_ptr<SparseWeight>& sparse,
                     const Tensor& bias);
Tensor sparse_conv2d(const Tensor& x, const Tensor& weight, const std::shared_ptr<SparseWeight>& sparse,
                     const Tensor& bias, const Conv2dOptions& opt = {});

struct Pool2dOptions {
  std::array<int64_t, 2> kernel{2, 2};
  std::array<int64_t, 2> stride{2, 2};
  std::array<int64_t, 2> padding{0, 0};
  bool count_include_pad = true;  // avg_pool2d only, PyTorch's default
};
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt);
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt);
Tensor adaptive_avg_pool2d(const Tensor& x, std::array<int64_t, 2> output_size);

// x (N, C) or (N, C, H, W). Training: normalise with the biased batch variance and update the
// running statistics in place (running = (1-momentum)·running + momentum·batch, unbiased var);
// eval: normalise with the running statistics. weight/bias/running tensors may be undefined.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, float momentum = 0.1f, float eps = 1e-5f);

// Shape ops. reshape/flatten return storage-sharing views; the others copy.
Tensor reshape(const Tensor& x, const Shape& shape);  // one dimension may be -1
Tensor flatten(const Tensor& x, int64_t start_dim = 1, int64_t end_dim = -1);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);

// Losses and normalised exponentials. Class targets are indices in [0, C).
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// logits (N, C); mean over the batch; label_smoothing as in torch.nn.functional.cross_entropy.
Tensor cross_entropy(const Tensor& logits, const std::vector<int64_t>& targets, float label_smoothing = 0.f);
Tensor nll_loss(const Tensor& log_probs, const std::vector<int64_t>& targets);
Tensor mse_loss(const Tensor& input, const Tensor& target);  // mean of squared differences

// The registry of op names (completeness of the gradient checks is tested against it).
struct OpInfo {
  const char* name;
};
const std::vector<OpInfo>& registered_ops();
struct OpRegistrar {
  explicit OpRegistrar(const char* name);
};
#define SHEARS_REGISTER_OP(name) static const ::shears::OpRegistrar shears_op_registrar_##name(#name)

// Normalises a possibly negative dimension index for a tensor of `rank` dimensions.
int64_t normalize_dim(int64_t dim, int64_t rank, const char* op);

}  // namespace shears
