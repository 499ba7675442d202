#include "core/autograd.hpp"

#include <unordered_map>
#include <unordered_set>

#include "core/error.hpp"
#include "core/kernels/kernels.hpp"
#include "core/ops.hpp"
#include "core/parallel.hpp"

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

Tensor record(Tensor output, const char* op, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!any_requires_grad(inputs)) return output;
  auto node = std::make_shared<Node>();
  node->op = op;
  for (const Tensor& t : inputs) node->needs_grad.push_back(t.defined() && t.requires_grad());
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
  std::vector<std::shared_ptr<TensorImpl>> order;
  std::unordered_set<TensorImpl*> visited{root.impl()};
  std::vector<std::pair<std::shared_ptr<TensorImpl>, size_t>> stack{{root.impl_ptr(), 0}};
  while (!stack.empty()) {
    auto& [t, next] = stack.back();
    Node* node = t->grad_fn.get();
    if (node && next < node->inputs.size()) {
      const auto& child = node->inputs[next++].impl_ptr();
      if (child && child->requires_grad && visited.insert(child.get()).second) stack.push_back({child, 0});
      continue;
    }
    order.push_back(std::move(t));
    stack.pop_back();
  }

  std::unordered_map<TensorImpl*, Tensor> grads{{root.impl(), grad_root}};
  auto accumulate = [&](TensorImpl* t, const Tensor& g) {
    Tensor& slot = grads[t];
    if (!slot.defined()) {
      slot = g;
    } else {
      NoGradGuard no_grad;
      slot = add(slot, g);  // out of place: slot may alias another gradient
    }
  };

  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    TensorImpl* t = it->get();
    auto found = grads.find(t);
    if (found == grads.end()) continue;
    Tensor g = std::move(found->second);
    grads.erase(found);
    Node* node = t->grad_fn.get();
    if (!node) {  // a leaf: accumulate into .grad
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
      input_grads = node->backward(g, node->needs_grad);
    }
    SHEARS_ASSERT(input_grads.size() == node->inputs.size());
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      if (!node->needs_grad[i] || !input_grads[i].defined()) continue;
      const Tensor& input = node->inputs[i];
      SHEARS_ASSERT(input_grads[i].shape() == input.shape());
      accumulate(input.impl(), input_grads[i]);
    }
    node->backward = nullptr;
    node->inputs.clear();
    node->released = true;
  }
}

}  // namespace shears
