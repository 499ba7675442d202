// Module: the tree of layers behind every model. Parameters, buffers and children are registered
// by name in registration order, so the dotted paths of the tree are PyTorch's state_dict keys
// (`layer2.0.downsample.0.weight`, docs/design.md#names) and survive structured pruning: nothing is
// ever fetched by position, and a layer reads its tensors and children back from the registry at
// each call, so replacing one (`set_parameter`, `replace`) changes the model consistently (a
// layer's sizes, a depthwise conv's groups included, are read from its tensors: nn/layers.hpp).
//
// Masks follow torch.nn.utils.prune (docs/algorithms/README.md#masks): a mask attached to a
// parameter makes the forward use `parameter ⊙ mask` (so the raw parameter's gradient is masked
// too); checkpoints hold either the masked values under the plain name (dense) or `<name>_orig` +
// `<name>_mask`.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "nn/safetensors.hpp"

namespace shears {
class SparseWeight;
}

namespace shears::nn {

using safetensors::Dtype;
using shears::NamedTensors;  // (core/tensor.hpp) so that nn::NamedTensors names it too

// How a masked parameter is written: its masked values under the plain name (loads into an
// unpruned PyTorch model), or PyTorch's re-parametrised `<name>_orig` + `<name>_mask` pair.
enum class MaskFormat { dense, orig_and_mask };

struct ShapeMismatch {
  std::string name;
  Shape expected, got;
};

// What load_state_dict found; a strict load throws instead when it is not ok().
struct LoadReport {
  std::vector<std::string> missing, unexpected;
  std::vector<ShapeMismatch> mismatched;
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string describe() const;  // one clause per problem kind, every key named
};

// A failure inside a forward, naming the module path where it happened:
// "forward of layer2.0.conv1 (Conv2d): conv2d: …".
class ForwardError : public Error {
 public:
  ForwardError(std::string path, std::string message);
  const std::string& path() const { return path_; }
  const std::string& message() const { return message_; }

 private:
  std::string path_, message_;
};

class Module {
 public:
  virtual ~Module() = default;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  virtual const char* type_name() const = 0;
  // A deep copy: tensors are copied (gradients are not), children cloned recursively.
  virtual std::shared_ptr<Module> clone() const = 0;
  // Multiply-accumulates of one call mapping `input` to `output` (0 for layers without any).
  virtual int64_t macs(const Shape& input, const Shape& output) const;

  // forward(x), then every active ForwardObserver.
  Tensor operator()(const Tensor& x);

  // --- The tree. Paths are dotted ("layer2.0.downsample"); "" is this module.
  Module& operator[](const std::string& path);
  const Module& operator[](const std::string& path) const;
  template <class M>
  M& get(const std::string& path);
  bool has_child(const std::string& name) const;
  // Swaps the module at `path` (which must exist) for another, keeping its name and position.
  void replace(const std::string& path, std::shared_ptr<Module> module);
  std::vector<std::pair<std::string, Module*>> named_children() const;
  // This module ("") and all descendants, parents before children, in registration order.
  std::vector<std::pair<std::string, Module*>> named_modules() const;

  // --- Tensors by dotted name ("fc.weight" or, on the owning module, "weight").
  bool has_parameter(const std::string& name) const;
  Tensor parameter(const std::string& name) const;
  // Replaces a parameter's tensor (e.g. shrunk by structured pruning); a mask must keep matching.
  void set_parameter(const std::string& name, Tensor value);
  bool has_buffer(const std::string& name) const;
  Tensor buffer(const std::string& name) const;
  void set_buffer(const std::string& name, Tensor value);

  NamedTensors named_parameters() const;  // raw parameters (masks not applied)
  NamedTensors named_buffers() const;     // masks not included
  std::vector<Tensor> parameters() const;
  int64_t num_parameters() const;

  // --- Masks attached to parameters (dotted parameter names).
  void set_mask(const std::string& parameter_name, const Tensor& mask);
  bool has_mask(const std::string& parameter_name) const;  // false for unknown names, as has_parameter
  Tensor mask(const std::string& parameter_name) const;
  // Makes the pruning permanent like prune.remove: the parameter becomes parameter ⊙ mask.
  void remove_mask(const std::string& parameter_name);
  NamedTensors named_masks() const;  // keyed by parameter name

  // --- Sparse forms (core/sparse.hpp): a Linear or Conv2d with one runs its sparse kernels
  // (nn/sparsify.hpp attaches them). Dropped whenever the parameter or its mask changes, so a
  // form never outlives the pattern it was built from.
  void set_sparse_form(const std::string& parameter_name, std::shared_ptr<SparseWeight> form);
  std::shared_ptr<SparseWeight> sparse_form(const std::string& parameter_name) const;  // null: none

  // --- State. Keys in PyTorch's order: per module its parameters, then its buffers, then its
  // children; masked parameters in orig_and_mask form go last among the parameters (`_orig`) and
  // the buffers (`_mask`), in the order they were masked, as prune does.
  std::vector<safetensors::Entry> state_dict(MaskFormat format = MaskFormat::orig_and_mask) const;
  // Copies values into the registered tensors (handles held elsewhere stay valid). A parameter is
  // satisfied by `<name>` (dense: any attached mask is dropped) or by `<name>_orig` + `<name>_mask`
  // (the mask is attached). Strict: missing, unexpected and mis-shaped keys are all listed in one
  // shears::Error and nothing is changed. Non-strict: the rest is loaded and the problems reported
  // (mis-shaped tensors are skipped, where PyTorch would still raise). Either way, a buffer
  // registered with an integer dtype (num_batches_tracked: I64) must receive values that dtype
  // holds exactly, whatever the entry's own dtype, else shears::Error naming the key.
  LoadReport load_state_dict(const std::vector<safetensors::Entry>& entries, bool strict = true);

  // Checkpoints: safetensors with provenance in __metadata__: this module's metadata() (e.g.
  // arch/num_classes/input_size set by make_model), then `extra`, then format "pt",
  // shears.version and shears.schema, which always win. load_checkpoint's errors start with the path.
  void save_checkpoint(const std::string& path, const std::map<std::string, std::string>& extra = {},
                       MaskFormat format = MaskFormat::orig_and_mask) const;
  LoadReport load_checkpoint(const std::string& path, bool strict = true);
  std::map<std::string, std::string>& metadata() { return metadata_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();

 protected:
  Module() = default;
  Module(const Module&) = default;  // shallow; Cloneable then calls deep_copy_state()

  Tensor register_parameter(const std::string& name, Tensor value);
  Tensor register_buffer(const std::string& name, Tensor value, Dtype dtype = Dtype::F32);
  template <class M>
  M& register_module(const std::string& name, std::shared_ptr<M> module);
  // The parameter as the forward uses it: parameter ⊙ mask when masked.
  Tensor effective(const std::string& name) const;
  // child(x), naming the child in any error thrown below it.
  Tensor call(const std::string& name, const Tensor& x);
  Module& child(const std::string& name) const;
  void deep_copy_state();

 private:
  struct Parameter {
    std::string name;
    Tensor value, mask;  // mask undefined unless masked
    int64_t mask_order = 0;
    std::shared_ptr<SparseWeight> sparse;
  };
  struct Buffer {
    std::string name;
    Tensor value;
    Dtype dtype;
  };
  struct Child {
    std::string name;
    std::shared_ptr<Module> module;
  };

  Module* find_child(const std::string& name) const;
  std::string child_names() const;
  void check_new_name(const std::string& name) const;
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  Parameter* find_parameter(const std::string& name);
  const Parameter* find_parameter(const std::string& name) const;
  Buffer* find_buffer(const std::string& name);
  const Buffer* find_buffer(const std::string& name) const;
  // The module owning a dotted tensor name, and the name's last component.
  std::pair<Module*, std::string> owner_of(const std::string& name) const;
  void collect_state(const std::string& prefix, MaskFormat format, std::vector<safetensors::Entry>& out) const;

  std::vector<Parameter> parameters_;
  std::vector<Buffer> buffers_;
  std::vector<Child> children_;
  int64_t masks_attached_ = 0;
  bool training_ = true;
  std::map<std::string, std::string> metadata_;
};

// CRTP base giving a layer its clone(): copy-construct, then deep-copy the registries. Layers
// keep their tensors and children only in the registries, so this copies them completely.
template <class Derived, class Base = Module>
class Cloneable : public Base {
 public:
  using Base::Base;
  std::shared_ptr<Module> clone() const override {
    auto copy = std::make_shared<Derived>(static_cast<const Derived&>(*this));
    copy->deep_copy_state();
    return copy;
  }
};

// Sees every module call on this thread while alive (summaries, activation capture); observers
// nest, the innermost is called first.
class ForwardObserver {
 public:
  using Fn = std::function<void(const Module&, const Tensor& input, const Tensor& output)>;
  explicit ForwardObserver(Fn fn);
  ~ForwardObserver();
  ForwardObserver(const ForwardObserver&) = delete;
  ForwardObserver& operator=(const ForwardObserver&) = delete;

 private:
  friend class Module;
  Fn fn_;
  ForwardObserver* previous_;
};

template <class M>
M& Module::register_module(const std::string& name, std::shared_ptr<M> module) {
  M& ref = *module;
  add_child(name, std::move(module));
  return ref;
}

template <class M>
M& Module::get(const std::string& path) {
  Module& m = (*this)[path];
  auto* typed = dynamic_cast<M*>(&m);
  SHEARS_CHECK(typed != nullptr, "Module::get", "module '", path, "' is a ", m.type_name(),
               ", not the requested type");
  return *typed;
}

}  // namespace shears::nn
