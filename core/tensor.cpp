#include "core/tensor.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/allocator.hpp"
#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/random.hpp"

namespace shears {

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

std::string to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

static size_t storage_bytes(int64_t size) { return static_cast<size_t>(std::max<int64_t>(size, 1)) * sizeof(float); }

Storage::Storage(int64_t size) : data_(static_cast<float*>(allocate_block(storage_bytes(size)))), size_(size) {}

Storage::~Storage() { free_block(data_, storage_bytes(size_)); }

// Also refuses shapes whose bytes overflow (2^61 elements and up): sizes from a file can be anything.
static void check_shape(const Shape& shape, const char* where) {
  int64_t n = 1;
  for (int64_t s : shape) {
    SHEARS_CHECK(s >= 0, where, "negative dimension in shape ", to_string(shape));
    SHEARS_CHECK(!__builtin_mul_overflow(n, s, &n) && n < (int64_t{1} << 61), where, "shape ", to_string(shape),
                 " has too many elements to allocate");
  }
}

Tensor Tensor::empty(const Shape& shape) {
  check_shape(shape, "Tensor::empty");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shears::numel(shape));
  impl->shape = shape;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape) { return full(shape, 0.f); }
Tensor Tensor::ones(const Shape& shape) { return full(shape, 1.f); }

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  t.fill_(value);
  return t;
}

Tensor Tensor::scalar(float value) { return full({}, value); }

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  SHEARS_CHECK(static_cast<int64_t>(values.size()) == shears::numel(shape), "Tensor::from_vector",
               "shape ", to_string(shape), " needs ", shears::numel(shape), " values, got ", values.size());
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

Tensor Tensor::rand(const Shape& shape, float low, float high, Generator& gen) {
  Tensor t = empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = low + (high - low) * gen.uniform();
  return t;
}

Tensor Tensor::randn(const Shape& shape, Generator& gen, float mean, float std) {
  Tensor t = empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = mean + std * gen.normal();
  return t;
}

Tensor Tensor::arange(int64_t n) {
  Tensor t = empty({n});
  for (int64_t i = 0; i < n; ++i) t.data()[i] = static_cast<float>(i);
  return t;
}

int64_t Tensor::size(int64_t d) const {
  int64_t rank = dim();
  SHEARS_CHECK(d >= -rank && d < rank, "Tensor::size", "dimension ", d, " out of range for shape ",
               to_string(shape()));
  return shape()[d < 0 ? d + rank : d];
}

float Tensor::item() const {
  SHEARS_CHECK(numel() == 1, "Tensor::item", "expected a tensor with one element, got shape ",
               to_string(shape()));
  return data()[0];
}

std::vector<float> Tensor::to_vector() const { return std::vector<float>(data(), data() + numel()); }

Tensor Tensor::view(const Shape& shape) const {
  check_shape(shape, "Tensor::view");
  SHEARS_CHECK(shears::numel(shape) == numel(), "view", "cannot view shape ", to_string(this->shape()),
               " as ", to_string(shape), " (element counts differ)");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = shape;
  return Tensor(std::move(impl));
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  SHEARS_CHECK(dim() >= 1 && 0 <= begin && begin <= end && end <= size(0), "Tensor::rows", "rows [",
               begin, ", ", end, ") out of range for shape ", to_string(shape()));
  Shape s = shape();
  int64_t row = s[0] ? numel() / s[0] : 0;
  s[0] = end - begin;
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset + begin * row;
  impl->shape = s;
  return Tensor(std::move(impl));
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape());
  std::memcpy(t.data(), data(), sizeof(float) * numel());
  return t;
}

Tensor Tensor::detach() const { return view(shape()); }

bool Tensor::shares_storage_with(const Tensor& other) const {
  return impl_->storage == other.impl_->storage;
}

Tensor& Tensor::fill_(float value) {
  std::fill(data(), data() + numel(), value);
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  SHEARS_CHECK(src.shape() == shape(), "copy_", "source shape ", to_string(src.shape()),
               " differs from destination shape ", to_string(shape()));
  std::memmove(data(), src.data(), sizeof(float) * numel());
  return *this;
}

Tensor& Tensor::requires_grad_(bool on) {
  SHEARS_CHECK(is_leaf() || on, "requires_grad_", "can only turn off requires_grad on a leaf tensor");
  impl_->requires_grad = on;
  return *this;
}

void Tensor::backward() const {
  SHEARS_CHECK(numel() == 1, "backward", "implicit gradient needs a scalar output, got shape ",
               to_string(shape()), "; pass the output gradient explicitly");
  backward(Tensor::ones(shape()));
}

void Tensor::backward(const Tensor& grad_output) const { run_backward(*this, grad_output); }

}  // namespace shears
