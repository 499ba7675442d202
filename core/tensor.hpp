// Tensor: a float32, row-major, contiguous N-d array with shared 64-byte-aligned storage.
// Views (reshape, flatten, slices along dim 0) share storage through an element offset.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace shears {

using Shape = std::vector<int64_t>;

inline int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}
Shape contiguous_strides(const Shape& shape);
std::string to_string(const Shape& shape);

// Owns one aligned float buffer; freed when the last tensor viewing it goes away.
class Storage {
 public:
  explicit Storage(int64_t size);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  float* data() const { return data_; }
  int64_t size() const { return size_; }

 private:
  float* data_;
  int64_t size_;
};

struct Node;
class Generator;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;
  Shape shape;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated by backward() into leaves
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor, if recorded
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Factories. Contents of empty() are uninitialised.
  static Tensor empty(const Shape& shape);
  static Tensor zeros(const Shape& shape);
  static Tensor ones(const Shape& shape);
  static Tensor full(const Shape& shape, float value);
  static Tensor scalar(float value);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);
  static Tensor rand(const Shape& shape, float low, float high, Generator& gen);
  static Tensor randn(const Shape& shape, Generator& gen, float mean = 0.f, float std = 1.f);
  static Tensor arange(int64_t n);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  int64_t dim() const { return static_cast<int64_t>(impl_->shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shears::numel(impl_->shape); }
  Shape strides() const { return contiguous_strides(impl_->shape); }
  float* data() const { return impl_->storage->data() + impl_->offset; }
  float item() const;
  std::vector<float> to_vector() const;

  // Storage-sharing view with a new shape of the same numel (no autograd; see ops reshape()).
  Tensor view(const Shape& shape) const;
  // Rows [begin, end) along dim 0 as a storage-sharing view (no autograd).
  Tensor rows(int64_t begin, int64_t end) const;
  Tensor clone() const;   // deep copy, detached
  Tensor detach() const;  // shares storage, no grad_fn, requires_grad false
  bool shares_storage_with(const Tensor& other) const;

  // In-place, outside autograd: for initialisation, optimisers and masks.
  Tensor& fill_(float value);
  Tensor& copy_(const Tensor& src);
  Tensor& zero_() { return fill_(0.f); }

  bool requires_grad() const { return impl_->requires_grad; }
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl_->grad); }
  void set_grad(const Tensor& g) { impl_->grad = g.impl_; }
  void zero_grad() { impl_->grad.reset(); }
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }

  // Reverse-mode differentiation from this tensor: a scalar, or with the given output gradient.
  void backward() const;
  void backward(const Tensor& grad_output) const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Dotted name → tensor, in registration order: parameters, buffers, optimizer state.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

}  // namespace shears
