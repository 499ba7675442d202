// Channel dependency groups (docs/algorithms/baselines.md#dependency-groups; after Torch-Pruning's DepGraph).
//
// A group is the maximal set of tensor slices that must lose the same channel indices: the output
// channels of the Conv2d/Linear layers producing a feature map (weight rows, bias), the per-channel
// tensors that follow it (BatchNorm γ, β, running mean and variance; a depthwise conv's filters and
// bias, since its in = out channels), and the input channels of every Conv2d/Linear reading it
// (weight columns; after a flatten, channel c is the `span` columns c·span … c·span + span − 1).
// A residual addition merges the groups of everything it sums.
//
// How groups are found: by tracing, not by knowing the zoo. One forward of an all-ones input (eval
// mode, gradients recorded, mode restored) records every Conv2d, Linear and BatchNorm call with
// its input and output tensors (a ForwardObserver); the autograd graph links them: from a layer's
// input, the walk goes back through the recorded ops (ReLU, pooling, flatten, add, dropout, …) to
// the nearest layer outputs, and every op with several activation inputs (add, sub, mul, …)
// couples them. So any model made of these layers and element-wise ops is handled; a concat, a
// grouped conv that is not depthwise, or a layer called twice are refused with an Error.
// Feature maps reaching the model's input or its output are never pruned (the classifier's
// outputs, and an identity shortcut from the input), so their groups are left out.
//
// Groups are listed in forward order of their first producer (Intra-Fusion enumerates from the
// output backwards: reverse the list for that).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace shears::prune {

enum class Role {
  producer,   // Conv2d / Linear output channels: weight dim 0, bias
  norm,       // BatchNorm: weight, bias, running_mean, running_var
  depthwise,  // depthwise Conv2d (groups = in = out): weight dim 0, bias
  consumer,   // Conv2d / Linear input channels: weight dim 1 (span columns per channel)
};
const char* role_name(Role role);

// One tensor cut along `dim`: channel c owns indices [c·span, (c+1)·span).
struct Slice {
  std::string tensor;  // dotted parameter or buffer name
  int64_t dim = 0;
  int64_t span = 1;
  bool buffer = false;
};

struct GroupMember {
  std::string module;  // dotted module path
  std::string type;    // "Conv2d", "BatchNorm2d", …
  Role role;
  std::vector<Slice> slices;
};

struct Group {
  int64_t channels = 0;
  std::vector<GroupMember> members;
  std::vector<std::string> edges;  // "A => B" lines: layer A's output reaches layer B's input
  // "group: N channels" then the edges, one per line.
  std::string describe() const;
  bool contains(const std::string& module, Role role) const;
};

// The prunable groups of `model` for inputs of `input_shape` (batch included, e.g. {1, 3, 32, 32}).
// `ignored`: regexes over module paths (matched in full); a group with an ignored producer or
// depthwise member is left out (Torch-Pruning's ignored_layers).
std::vector<Group> dependency_groups(nn::Module& model, const Shape& input_shape,
                                     const std::vector<std::string>& ignored = {});

// Calls fn(flat index) for every element of channel c of `slice` in a tensor of `shape`.
void for_each_in_channel(const Shape& shape, const Slice& slice, int64_t c, const std::function<void(int64_t)>& fn);

}  // namespace shears::prune
