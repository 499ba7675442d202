// A model's per-layer table (the data behind `shears info --model NAME`; printing is the CLI's):
// every leaf module called by one forward of a zero input, in call order, with its output shape,
// its own parameter count and its multiply-accumulates.
//
// MACs count the multiply-accumulates of Conv2d and Linear layers (bias additions, batch norm,
// pooling and activations are not counted, as in the pruning papers' FLOP tables); FLOPs are
// 2 × MACs. Both are for the batch of the input shape given (batch 1: per image).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace shears::nn {

struct LayerSummary {
  std::string name;  // dotted path, e.g. "layer1.0.conv1"
  std::string type;  // "Conv2d"
  Shape output_shape;
  int64_t parameters = 0;  // the layer's own parameters
  int64_t macs = 0;
  std::string conv_paths;  // Conv2d: the engine's path for the forward, dx and dW (core/kernels/conv.hpp)
};

struct Summary {
  Shape input_shape;
  std::vector<LayerSummary> layers;
  int64_t parameters = 0;  // every parameter of the model (a layer called twice counts once)
  int64_t macs = 0;        // sum over the calls
  int64_t flops() const { return 2 * macs; }
};

// Runs the model in eval mode without gradients (restoring its mode after); input_shape
// includes the batch, e.g. {1, 3, 32, 32}.
Summary summarize(Module& model, const Shape& input_shape);

}  // namespace shears::nn
