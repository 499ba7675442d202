#include "nn/module.hpp"

#include <algorithm>
#include <set>

#include "core/autograd.hpp"
#include "core/ops.hpp"
#include "core/profile.hpp"
#include "core/sparse.hpp"
#include "core/version.hpp"
#include "nn/sparse_checkpoint.hpp"

namespace shears::nn {

namespace {

thread_local ForwardObserver* current_observer = nullptr;

std::pair<std::string, std::string> split_last(const std::string& path) {
  auto dot = path.rfind('.');
  if (dot == std::string::npos) return {"", path};
  return {path.substr(0, dot), path.substr(dot + 1)};
}

std::string join(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  return name.empty() ? prefix : prefix + "." + name;
}

std::string list(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

}  // namespace

std::string LoadReport::describe() const {
  std::string out;
  auto clause = [&](size_t n, const char* what, const std::string& names) {
    if (n == 0) return;
    out += (out.empty() ? "" : "; ") + std::to_string(n) + " " + what + (n == 1 ? "" : "s") + ": " + names;
  };
  clause(missing.size(), "missing key", list(missing));
  clause(unexpected.size(), "unexpected key", list(unexpected));
  std::vector<std::string> shapes;
  for (const ShapeMismatch& m : mismatched)
    shapes.push_back(m.name + " (model " + to_string(m.expected) + ", file " + to_string(m.got) + ")");
  clause(shapes.size(), "shape mismatch", list(shapes));
  return out;
}

ForwardError::ForwardError(std::string path, std::string message)
    : Error("forward of " + path + ": " + message), path_(std::move(path)), message_(std::move(message)) {}

ForwardObserver::ForwardObserver(Fn fn) : fn_(std::move(fn)), previous_(current_observer) {
  current_observer = this;
}
ForwardObserver::~ForwardObserver() { current_observer = previous_; }

int64_t Module::macs(const Shape&, const Shape&) const { return 0; }

Tensor Module::operator()(const Tensor& x) {
  Tensor y = forward(x);
  for (ForwardObserver* o = current_observer; o != nullptr; o = o->previous_) o->fn_(*this, x, y);
  return y;
}

Tensor Module::call(const std::string& name, const Tensor& x) {
  Module& m = child(name);
  profile::LayerScope layer(name);
  try {
    return m(x);
  } catch (const ForwardError& e) {
    throw ForwardError(name + "." + e.path(), e.message());
  } catch (const Error& e) {
    throw ForwardError(name + " (" + m.type_name() + ")", e.what());
  }
}

// ---- The tree.

Module* Module::find_child(const std::string& name) const {
  for (const Child& c : children_)
    if (c.name == name) return c.module.get();
  return nullptr;
}

std::string Module::child_names() const {
  std::vector<std::string> names;
  for (const Child& c : children_) names.push_back(c.name);
  return names.empty() ? "none" : list(names);
}

Module& Module::child(const std::string& name) const {
  Module* m = find_child(name);
  SHEARS_CHECK(m != nullptr, type_name(), "no child '", name, "' (children: ", child_names(), ")");
  return *m;
}

Module& Module::operator[](const std::string& path) {
  return const_cast<Module&>(static_cast<const Module&>(*this)[path]);
}

const Module& Module::operator[](const std::string& path) const {
  const Module* m = this;
  for (size_t begin = 0; begin < path.size();) {
    size_t end = std::min(path.find('.', begin), path.size());
    std::string part = path.substr(begin, end - begin);
    const Module* next = m->find_child(part);
    SHEARS_CHECK(next != nullptr, "Module", "no module '", path, "': ", m->type_name(), " has no child '", part,
                 "' (children: ", m->child_names(), ")");
    m = next;
    begin = end + 1;
  }
  return *m;
}

bool Module::has_child(const std::string& name) const { return find_child(name) != nullptr; }

void Module::replace(const std::string& path, std::shared_ptr<Module> module) {
  SHEARS_CHECK(module != nullptr, "Module::replace", "null module for '", path, "'");
  auto [parent, name] = split_last(path);
  Module& owner = (*this)[parent];
  owner.child(name);  // throws, naming the children, when absent
  for (Child& c : owner.children_)
    if (c.name == name) c.module = std::move(module);
}

std::vector<std::pair<std::string, Module*>> Module::named_children() const {
  std::vector<std::pair<std::string, Module*>> out;
  for (const Child& c : children_) out.emplace_back(c.name, c.module.get());
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, Module*>> out{{"", const_cast<Module*>(this)}};
  for (const Child& c : children_)
    for (auto& [name, m] : c.module->named_modules()) out.emplace_back(join(c.name, name), m);
  return out;
}

// ---- Registration.

void Module::check_new_name(const std::string& name) const {
  SHEARS_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name(),
               "a registered name must be non-empty and contain no '.', got '", name, "'");
  SHEARS_CHECK(find_parameter(name) == nullptr && find_buffer(name) == nullptr && !has_child(name), type_name(),
               "name '", name, "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  check_new_name(name);
  SHEARS_CHECK(value.defined(), type_name(), "parameter '", name, "' is undefined");
  value.requires_grad_(true);
  parameters_.push_back({name, value, Tensor(), 0, nullptr});
  return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value, Dtype dtype) {
  check_new_name(name);
  SHEARS_CHECK(value.defined(), type_name(), "buffer '", name, "' is undefined");
  buffers_.push_back({name, value, dtype});
  return value;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name);
  SHEARS_CHECK(module != nullptr, type_name(), "child '", name, "' is null");
  children_.push_back({name, std::move(module)});
}

Module::Parameter* Module::find_parameter(const std::string& name) {
  for (Parameter& p : parameters_)
    if (p.name == name) return &p;
  return nullptr;
}
const Module::Parameter* Module::find_parameter(const std::string& name) const {
  return const_cast<Module*>(this)->find_parameter(name);
}
Module::Buffer* Module::find_buffer(const std::string& name) {
  for (Buffer& b : buffers_)
    if (b.name == name) return &b;
  return nullptr;
}
const Module::Buffer* Module::find_buffer(const std::string& name) const {
  return const_cast<Module*>(this)->find_buffer(name);
}

std::pair<Module*, std::string> Module::owner_of(const std::string& name) const {
  auto [path, last] = split_last(name);
  return {const_cast<Module*>(&(*this)[path]), last};
}

// ---- Tensors by name.

bool Module::has_parameter(const std::string& name) const {
  try {
    auto [m, last] = owner_of(name);
    return m->find_parameter(last) != nullptr;
  } catch (const Error&) {
    return false;
  }
}

Tensor Module::parameter(const std::string& name) const {
  auto [m, last] = owner_of(name);
  const Parameter* p = m->find_parameter(last);
  SHEARS_CHECK(p != nullptr, "Module::parameter", "no parameter '", name, "'");
  return p->value;
}

void Module::set_parameter(const std::string& name, Tensor value) {
  auto [m, last] = owner_of(name);
  Parameter* p = m->find_parameter(last);
  SHEARS_CHECK(p != nullptr, "Module::set_parameter", "no parameter '", name, "'");
  SHEARS_CHECK(value.defined() && value.is_leaf(), "Module::set_parameter", "'", name,
               "' needs a defined leaf tensor");
  SHEARS_CHECK(!p->mask.defined() || p->mask.shape() == value.shape(), "Module::set_parameter", "'", name,
               "' is masked with shape ", to_string(p->mask.shape()), " but the new value has shape ",
               to_string(value.shape()), "; remove or re-set the mask first");
  value.requires_grad_(true);
  p->value = std::move(value);
  p->sparse.reset();
}

bool Module::has_buffer(const std::string& name) const {
  try {
    auto [m, last] = owner_of(name);
    return m->find_buffer(last) != nullptr;
  } catch (const Error&) {
    return false;
  }
}

Tensor Module::buffer(const std::string& name) const {
  auto [m, last] = owner_of(name);
  const Buffer* b = m->find_buffer(last);
  SHEARS_CHECK(b != nullptr, "Module::buffer", "no buffer '", name, "'");
  return b->value;
}

void Module::set_buffer(const std::string& name, Tensor value) {
  auto [m, last] = owner_of(name);
  Buffer* b = m->find_buffer(last);
  SHEARS_CHECK(b != nullptr, "Module::set_buffer", "no buffer '", name, "'");
  SHEARS_CHECK(value.defined(), "Module::set_buffer", "'", name, "' needs a defined tensor");
  b->value = std::move(value);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  for (auto& [prefix, m] : named_modules())
    for (const Parameter& p : m->parameters_) out.emplace_back(join(prefix, p.name), p.value);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  for (auto& [prefix, m] : named_modules())
    for (const Buffer& b : m->buffers_) out.emplace_back(join(prefix, b.name), b.value);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

// ---- Masks.

void Module::set_mask(const std::string& parameter_name, const Tensor& mask) {
  auto [m, last] = owner_of(parameter_name);
  Parameter* p = m->find_parameter(last);
  SHEARS_CHECK(p != nullptr, "Module::set_mask", "no parameter '", parameter_name, "'");
  SHEARS_CHECK(mask.defined() && mask.shape() == p->value.shape(), "Module::set_mask", "mask for '",
               parameter_name, "' must have the parameter's shape ", to_string(p->value.shape()), ", got ",
               mask.defined() ? to_string(mask.shape()) : "an undefined tensor");
  if (!p->mask.defined()) p->mask_order = ++m->masks_attached_;
  p->mask = mask.clone();
  p->sparse.reset();
}

bool Module::has_mask(const std::string& parameter_name) const {
  try {
    auto [m, last] = owner_of(parameter_name);
    const Parameter* p = m->find_parameter(last);
    return p != nullptr && p->mask.defined();
  } catch (const Error&) {
    return false;
  }
}

Tensor Module::mask(const std::string& parameter_name) const {
  auto [m, last] = owner_of(parameter_name);
  const Parameter* p = m->find_parameter(last);
  SHEARS_CHECK(p != nullptr && p->mask.defined(), "Module::mask", "parameter '", parameter_name, "' has no mask");
  return p->mask;
}

void Module::remove_mask(const std::string& parameter_name) {
  auto [m, last] = owner_of(parameter_name);
  Parameter* p = m->find_parameter(last);
  SHEARS_CHECK(p != nullptr && p->mask.defined(), "Module::remove_mask", "parameter '", parameter_name,
               "' has no mask");
  float* w = p->value.data();
  const float* k = p->mask.data();
  for (int64_t i = 0; i < p->value.numel(); ++i) w[i] *= k[i];
  p->mask = Tensor();
  p->sparse.reset();
}

NamedTensors Module::named_masks() const {
  NamedTensors out;
  for (auto& [prefix, m] : named_modules())
    for (const Parameter& p : m->parameters_)
      if (p.mask.defined()) out.emplace_back(join(prefix, p.name), p.mask);
  return out;
}

void Module::set_sparse_form(const std::string& parameter_name, std::shared_ptr<SparseWeight> form) {
  auto [m, last] = owner_of(parameter_name);
  Parameter* p = m->find_parameter(last);
  SHEARS_CHECK(p != nullptr, "Module::set_sparse_form", "no parameter '", parameter_name, "'");
  SHEARS_CHECK(!form || form->shape() == p->value.shape(), "Module::set_sparse_form", "the form of '", parameter_name,
               "' has shape ", to_string(form->shape()), ", the parameter ", to_string(p->value.shape()));
  p->sparse = std::move(form);
}

std::shared_ptr<SparseWeight> Module::sparse_form(const std::string& parameter_name) const {
  auto [m, last] = owner_of(parameter_name);
  const Parameter* p = m->find_parameter(last);
  return p != nullptr ? p->sparse : nullptr;
}

Tensor Module::effective(const std::string& name) const {
  const Parameter* p = find_parameter(name);
  SHEARS_CHECK(p != nullptr, type_name(), "no parameter '", name, "'");
  return p->mask.defined() ? mul(p->value, p->mask) : p->value;
}

// ---- State.

void Module::collect_state(const std::string& prefix, MaskFormat format, std::vector<safetensors::Entry>& out) const {
  bool reparametrise = format == MaskFormat::orig_and_mask;
  std::vector<const Parameter*> masked;
  for (const Parameter& p : parameters_) {
    if (!p.mask.defined()) {
      out.push_back({join(prefix, p.name), p.value.detach(), Dtype::F32});
    } else if (reparametrise) {
      masked.push_back(&p);
    } else {
      NoGradGuard no_grad;
      out.push_back({join(prefix, p.name), mul(p.value, p.mask), Dtype::F32});
    }
  }
  std::sort(masked.begin(), masked.end(), [](auto* a, auto* b) { return a->mask_order < b->mask_order; });
  for (const Parameter* p : masked) out.push_back({join(prefix, p->name + "_orig"), p->value.detach(), Dtype::F32});
  for (const Buffer& b : buffers_) out.push_back({join(prefix, b.name), b.value.detach(), b.dtype});
  for (const Parameter* p : masked) out.push_back({join(prefix, p->name + "_mask"), p->mask.detach(), Dtype::F32});
  for (const Child& c : children_) c.module->collect_state(join(prefix, c.name), format, out);
}

std::vector<safetensors::Entry> Module::state_dict(MaskFormat format) const {
  std::vector<safetensors::Entry> out;
  collect_state("", format, out);
  return out;
}

LoadReport Module::load_state_dict(const std::vector<safetensors::Entry>& entries, bool strict) {
  std::map<std::string, const Tensor*> given;
  for (const safetensors::Entry& e : entries)
    SHEARS_CHECK(given.emplace(e.name, &e.value).second, "load_state_dict", "key '", e.name, "' appears twice");

  // Plan every copy first, so a strict failure changes nothing.
  struct Copy {
    Tensor target;
    const Tensor* source;
  };
  struct MaskAction {
    Module* owner;
    std::string name;
    const Tensor* mask;  // nullptr: drop the mask (a dense value was given)
  };
  std::vector<Copy> copies;
  std::vector<MaskAction> masks;
  std::set<std::string> used;
  LoadReport report;
  auto take = [&](const std::string& key, const Tensor& target) -> const Tensor* {
    auto it = given.find(key);
    if (it == given.end()) {
      report.missing.push_back(key);
      return nullptr;
    }
    used.insert(key);
    if (it->second->shape() != target.shape()) {
      report.mismatched.push_back({key, target.shape(), it->second->shape()});
      return nullptr;
    }
    return it->second;
  };

  for (auto& [prefix, m] : named_modules()) {
    for (Parameter& p : m->parameters_) {
      std::string key = join(prefix, p.name);
      if (given.count(key + "_orig") || given.count(key + "_mask")) {
        const Tensor* orig = take(key + "_orig", p.value);
        const Tensor* mask = take(key + "_mask", p.value);
        if (orig && mask) {
          copies.push_back({p.value, orig});
          masks.push_back({m, p.name, mask});
        }
      } else if (const Tensor* value = take(key, p.value)) {
        copies.push_back({p.value, value});
        if (p.mask.defined()) masks.push_back({m, p.name, nullptr});
      }
    }
    for (Buffer& b : m->buffers_) {
      std::string key = join(prefix, b.name);
      const Tensor* value = take(key, b.value);
      if (value == nullptr) continue;
      // The registered dtype decides (PyTorch casts whatever the file holds into the buffer's):
      // a count saved as F32 7.0 loads, 7.5 does not.
      const float* v = value->data();
      for (int64_t i = 0; i < value->numel(); ++i)
        SHEARS_CHECK(safetensors::holds_exactly(b.dtype, v[i]), "load_state_dict", "key '", key,
                     "': expected values the buffer's ", safetensors::dtype_name(b.dtype), " holds exactly, got ", v[i],
                     " at element ", i);
      copies.push_back({b.value, value});
    }
  }
  for (const safetensors::Entry& e : entries)
    if (!used.count(e.name)) report.unexpected.push_back(e.name);

  SHEARS_CHECK(!strict || report.ok(), "load_state_dict", report.describe());
  for (Copy& c : copies) c.target.copy_(*c.source);
  for (auto& [prefix, m] : named_modules())  // new values: the sparse forms' patterns may not hold
    for (Parameter& p : m->parameters_) p.sparse.reset();
  for (MaskAction& a : masks) {
    if (a.mask != nullptr) {
      a.owner->set_mask(a.name, *a.mask);
    } else {
      a.owner->find_parameter(a.name)->mask = Tensor();
    }
  }
  return report;
}

void Module::save_checkpoint(const std::string& path, const std::map<std::string, std::string>& extra,
                             MaskFormat format) const {
  std::map<std::string, std::string> meta = metadata_;
  for (auto& [k, v] : extra) meta[k] = v;
  meta["format"] = "pt";  // provenance wins over anything the model or the caller set
  meta["shears.version"] = kVersion;
  meta["shears.schema"] = std::to_string(kDenseCheckpointSchema);
  safetensors::save(path, state_dict(format), meta);
}

LoadReport Module::load_checkpoint(const std::string& path, bool strict) {
  safetensors::File file = safetensors::load(path);
  expand_sparse_entries(file, path);
  try {
    return load_state_dict(file.tensors, strict);
  } catch (const Error& e) {
    std::string hint;
    auto theirs = file.metadata.find("arch"), ours = metadata_.find("arch");
    if (theirs != file.metadata.end() && ours != metadata_.end() && theirs->second != ours->second)
      hint = " (hint: the file was written by a " + theirs->second + ", this model is a " + ours->second + ")";
    throw Error(path + ": " + e.what() + hint);
  }
}

// ---- Modes, gradients, copies.

void Module::train(bool on) {
  for (auto& [name, m] : named_modules()) m->training_ = on;
}

void Module::zero_grad() {
  for (auto& [name, t] : named_parameters()) t.zero_grad();
}

void Module::deep_copy_state() {
  for (Parameter& p : parameters_) {
    p.value = p.value.clone().requires_grad_(true);
    if (p.mask.defined()) p.mask = p.mask.clone();
    if (p.sparse) p.sparse = std::make_shared<SparseWeight>(*p.sparse);
  }
  for (Buffer& b : buffers_) b.value = b.value.clone();
  for (Child& c : children_) c.module = c.module->clone();
}

}  // namespace shears::nn
