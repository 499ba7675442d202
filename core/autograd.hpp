// Define-by-run autograd (docs/design.md#autograd): every op that sees an input requiring a gradient
// records a Node holding its inputs and a backward closure; backward() walks the recorded graph
// in reverse topological order, accumulating with +=, and frees it as it goes.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace shears {

// Maps the gradient of an op's output to the gradients of its inputs (one per input, in order;
// an undefined Tensor where needs_grad[i] is false or the input gets no gradient).
using BackwardFn =
    std::function<std::vector<Tensor>(const Tensor& grad_output, const std::vector<bool>& needs_grad)>;

struct Node {
  std::string op;
  std::vector<Tensor> inputs;
  std::vector<bool> needs_grad;
  BackwardFn backward;
  bool released = false;  // set once backward has run and the saved tensors were freed
  int64_t profile_entry = -1;  // the profile::Entry of the forward op, while profiling
};

// Whether ops record graphs on this thread (off inside a NoGradGuard).
bool grad_mode_enabled();

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when grad mode is on and some input requires a gradient.
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Attaches a Node to `output` when any input requires a gradient; returns `output`. The Node
// holds leaves themselves and, for intermediate results, storage-less stand-ins with their
// producer (as PyTorch's edges do), so only what a closure saves outlives the forward pass.
// Closures must save outputs as out.detach(), never `out` itself (that would form a cycle).
Tensor record(Tensor output, const char* op, std::vector<Tensor> inputs, BackwardFn backward);

void run_backward(const Tensor& root, const Tensor& grad_root);

// A tensor's place in the recorded graph: its producing Node, or the tensor itself for a leaf.
// A stand-in in Node::inputs has the identity of the tensor it stands for.
const void* graph_identity(const Tensor& t);

}  // namespace shears
