#include "core/autograd.hpp"

#include <unordered_map>
#include <unordered_set>

#include "core/error.hpp"
#include "core/kernels/kernels.hpp"
#include "core/ops.hpp"
#include "core/parallel.hpp"
#include "core/profile.hpp"

namespace shears {

namespace {
thread_local bool grad_mode = true;
}

bool grad_mode_enabled() { return grad_mode; }
NoGradGuard::NoGradGuard() : previous_(grad_mode) { grad_mode = false; }
NoGradGuard::~NoGradGuard() { grad_mode = previous_; }

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!grad_mode) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

const void* graph_identity(const Tensor& t) {
  return t.grad_fn() ? static_cast<const void*>(t.grad_fn().get()) : static_cast<const void*>(t.impl());
}

Tensor record(Tensor output, const char* op, std::vector<Tensor> inputs, BackwardFn backward) {
  if (profile::active()) {  // bytes read and written by the forward (with or without a graph): inputs and output
    double bytes = static_cast<double>(output.numel());
    for (const Tensor& t : inputs) bytes += t.defined() ? static_cast<double>(t.numel()) : 0.0;
    profile::add_bytes(profile::current_entry(), bytes * sizeof(float));
  }
  if (!any_requires_grad(inputs)) return output;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->profile_entry = profile::current_entry();
  for (Tensor& t : inputs) {
    node->needs_grad.push_back(t.defined() && t.requires_grad());
    if (t.defined() && t.grad_fn()) {
      // An intermediate result: the graph needs its producer and shape, not its values (the
      // closure saved what backward reads), so a stand-in without storage lets them be freed.
      auto stand_in = std::make_shared<TensorImpl>();
      stand_in->shape = t.shape();
      stand_in->requires_grad = true;
      stand_in->grad_fn = t.grad_fn();
      t = Tensor(std::move(stand_in));
    }
  }
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  output.impl()->grad_fn = std::move(node);
  output.impl()->requires_grad = true;
  return output;
}

void run_backward(const Tensor& root, const Tensor& grad_root) {
  SHEARS_CHECK(root.requires_grad(), "backward", "the tensor does not require grad and has no grad_fn");
  SHEARS_CHECK(grad_root.shape() == root.shape(), "backward", "output gradient has shape ",
               to_string(grad_root.shape()), ", expected ", to_string(root.shape()));

  // Topological order by iterative depth-first search over grad_fn edges. `order` owns the
  // tensors so that releasing a node's inputs below cannot free one still to be visited.
  std::vector<Tensor> order;
  std::unordered_set<const void*> visited{graph_identity(root)};
  std::vector<std::pair<Tensor, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [t, next] = stack.back();
    Node* node = t.grad_fn().get();
    if (node && next < node->inputs.size()) {
      const Tensor& child = node->inputs[next++];
      if (child.defined() && child.requires_grad() && visited.insert(graph_identity(child)).second)
        stack.push_back({child, 0});
      continue;
    }
    order.push_back(std::move(t));
    stack.pop_back();
  }

  std::unordered_map<const void*, Tensor> grads{{graph_identity(root), grad_root}};
  auto accumulate = [&](const void* t, const Tensor& g) {
    profile::BackwardScope scope(-1, "grad accumulation");
    Tensor& slot = grads[t];
    if (!slot.defined()) {
      slot = g;
    } else {
      NoGradGuard no_grad;
      slot = add(slot, g);  // out of place: slot may alias another gradient
    }
  };

  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    TensorImpl* t = it->impl();
    auto found = grads.find(graph_identity(*it));
    if (found == grads.end()) continue;
    Tensor g = std::move(found->second);
    grads.erase(found);
    Node* node = t->grad_fn.get();
    if (!node) {  // a leaf: accumulate into .grad
      profile::BackwardScope scope(-1, "grad accumulation");
      if (!t->grad) {
        t->grad = g.clone().impl_ptr();
      } else {
        Tensor acc(t->grad);
        const float* src = g.data();
        float* dst = acc.data();
        parallel_for(acc.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
          kernels::kernels().binary(kernels::Binary::Add, dst + begin, src + begin, dst + begin, end - begin);
        });
      }
      continue;
    }
    SHEARS_CHECK(!node->released, "backward", "trying to backward through the graph of '", node->op,
                 "' a second time; its saved tensors were freed after the first backward");
    std::vector<Tensor> input_grads;
    {
      NoGradGuard no_grad;
      profile::BackwardScope scope(node->profile_entry, node->op.c_str());
      input_grads = node->backward(g, node->needs_grad);
    }
    SHEARS_ASSERT(input_grads.size() == node->inputs.size());
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      if (!node->needs_grad[i] || !input_grads[i].defined()) continue;
      const Tensor& input = node->inputs[i];
      SHEARS_ASSERT(input_grads[i].shape() == input.shape());
      accumulate(graph_identity(input), input_grads[i]);
    }
    node->backward = nullptr;
    node->inputs.clear();
    node->released = true;
  }
}

}  // namespace shears
